//! Figures over several runs, shown as median and range.

/// One cell: the runs' values; reported as median and range.
#[derive(Default, Clone)]
pub struct Cell(pub Vec<f64>);

impl Cell {
    pub fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
    /// (lowest, highest).
    pub fn range(&self) -> (f64, f64) {
        let lo = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }

    pub fn show(&self, unit: Unit) -> String {
        if self.0.is_empty() {
            return "n/a".into();
        }
        self.text(unit) + &self.raw(unit)
    }

    /// Every run's value as `<!--raw UNIT V...-->` when `dstash-benches all` asks for
    /// them (to keep as CSV), else nothing.
    pub fn raw(&self, unit: Unit) -> String {
        if std::env::var_os(RAW).is_none() || self.0.is_empty() {
            return String::new();
        }
        let values: Vec<String> = self.0.iter().map(|v| format!("{v}")).collect();
        format!("<!--raw {} {}-->", unit.name(), values.join(" "))
    }

    fn text(&self, unit: Unit) -> String {
        let (lo, hi) = self.range();
        if self.0.len() == 1 {
            unit.fmt(self.median())
        } else {
            format!(
                "{} ({}–{})",
                unit.fmt(self.median()),
                unit.fmt(lo),
                unit.fmt(hi)
            )
        }
    }
}

/// Set (to anything) for [`Cell::show`] to follow each figure with its runs' values in
/// an HTML comment, `<!--raw UNIT V1 V2 ...-->`.
pub const RAW: &str = "DSTASH_BENCH_RAW";

#[derive(Clone, Copy)]
pub enum Unit {
    PerSec,
    Nanos,
    Millis,
    MiB,
}

impl Unit {
    /// The unit of the raw values.
    pub fn name(self) -> &'static str {
        match self {
            Unit::PerSec => "per_second",
            Unit::Nanos => "nanoseconds",
            Unit::Millis => "milliseconds",
            Unit::MiB => "bytes",
        }
    }

    pub fn fmt(self, x: f64) -> String {
        match self {
            Unit::PerSec if x >= 1e6 => format!("{:.2} M/s", x / 1e6),
            Unit::PerSec if x >= 1e5 => format!("{:.0} K/s", x / 1e3),
            Unit::PerSec => format!("{:.1} K/s", x / 1e3),
            Unit::Nanos if x >= 1e7 => format!("{:.1} ms", x / 1e6),
            Unit::Nanos => format!("{:.2} µs", x / 1e3),
            Unit::Millis => format!("{x:.0} ms"),
            Unit::MiB => format!("{:.1} MiB", x / (1 << 20) as f64),
        }
    }
}

/// Marks a line of a section's output as one of the targets; `all` gathers these
/// lines into the report's summary.
pub const TARGET: &str = "- **Target** ";

/// A target's line: the measured ratio against the goal, met or missed and by how much,
/// and, when missed, what limits it.
pub fn target(what: &str, ratio: f64, goal: f64, limit: &str) -> String {
    if ratio.is_nan() {
        format!("{TARGET}{what}: not measured in this run (goal ≥ {goal}×).")
    } else if ratio >= goal {
        format!("{TARGET}{what}: ×{ratio:.2} against a goal of ≥ {goal}×: **met**.")
    } else {
        format!(
            "{TARGET}{what}: ×{ratio:.2} against a goal of ≥ {goal}×: **missed by {:.0} %**. {limit}",
            (1.0 - ratio / goal) * 100.0
        )
    }
}

/// dstash's median ÷ the other's, NaN where either was not measured.
pub fn over(dstash: &Cell, other: &Cell) -> f64 {
    if dstash.0.is_empty() || other.0.is_empty() {
        f64::NAN
    } else {
        dstash.median() / other.median()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_line_says_met_or_by_how_much_it_missed() {
        let met = target("gets ÷ heed", 1.5, 1.0, "never shown");
        assert!(met.starts_with(TARGET) && met.contains("**met**"), "{met}");
        assert!(!met.contains("never shown"));
        let missed = target("lookups ÷ MGET", 1.5, 2.0, "The echo ceiling.");
        assert!(
            missed.contains("**missed by 25 %**. The echo ceiling."),
            "{missed}"
        );
        assert!(target("x", f64::NAN, 2.0, "").contains("not measured"));
        assert!(over(&Cell(vec![3.0]), &Cell(vec![])).is_nan());
        assert_eq!(over(&Cell(vec![3.0, 9.0, 6.0]), &Cell(vec![2.0])), 3.0);
    }
}
