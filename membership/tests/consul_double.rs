//! The Consul client, the node's registration loop and the clients' watch, against the
//! in-process double (and the double itself against Consul's documented behaviour).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dstash_membership::{
    keep_registered, watch, Consul, ConsulDouble, Error, Registration, WatchOptions,
};

fn reg(id: &str, port: u16, ttl_ms: u64) -> Registration {
    Registration {
        id: id.into(),
        name: "dstash".into(),
        address: "127.0.0.1".into(),
        port,
        meta: BTreeMap::from([
            ("version".into(), "0.1.0".into()),
            ("zone".into(), "z1".into()),
        ]),
        ttl: Duration::from_millis(ttl_ms),
        deregister_after: Duration::from_secs(60),
    }
}

/// Polls `f` every 10 ms for up to 5 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_double_follows_the_documented_api() {
    let d = ConsulDouble::start().await;
    let c = Consul::new(&d.url()).unwrap();
    c.register(&reg("n1", 5001, 60_000)).await.unwrap();
    let (all, i1) = c
        .healthy("dstash", 0, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        all.is_empty(),
        "a new TTL check starts critical, so ?passing hides it"
    );
    c.update_check("dstash:n1:ttl", true, "ok").await.unwrap();
    let (all, i2) = c
        .healthy("dstash", 0, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(i2 > i1);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].addr(), "127.0.0.1:5001");
    assert_eq!(all[0].meta["zone"], "z1");

    // Unknown ids: 404 for deregister, 500 for a check pass.
    match c.deregister("nope").await {
        Err(Error::Status { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    match c.update_check("nope", true, "").await {
        Err(Error::Status {
            status: 500, body, ..
        }) => assert!(body.contains("Unknown check")),
        other => panic!("{other:?}"),
    }

    // A blocking query returns when the index moves...
    let c2 = c.clone();
    let t = Instant::now();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c2.register(&reg("n2", 5002, 60_000)).await.unwrap();
    });
    let (_, i3) = c
        .healthy("dstash", i2, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(i3 > i2 && t.elapsed() < Duration::from_secs(5));
    later.await.unwrap();
    // ...or when the wait ends, with the same index.
    let t = Instant::now();
    let (_, i4) = c
        .healthy("dstash", i3, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(i4, i3);
    assert!(t.elapsed() >= Duration::from_millis(900));

    // Results come back shuffled.
    for i in 3..8 {
        c.register(&reg(&format!("n{i}"), 5000 + i, 60_000))
            .await
            .unwrap();
        c.update_check(&format!("dstash:n{i}:ttl"), true, "")
            .await
            .unwrap();
    }
    let mut orders = std::collections::HashSet::new();
    for _ in 0..20 {
        let (all, _) = c
            .healthy("dstash", 0, Duration::from_secs(1))
            .await
            .unwrap();
        orders.insert(all.iter().map(|i| i.id.clone()).collect::<Vec<_>>());
    }
    assert!(orders.len() > 1, "always the same order");

    d.set_leader_lost(true);
    match c.healthy("dstash", 0, Duration::from_secs(1)).await {
        Err(Error::Status { status: 500, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ttl_expiry_turns_critical_and_reaps_after_the_deregister_delay() {
    let d = ConsulDouble::start().await;
    let c = Consul::new(&d.url()).unwrap();
    let mut r = reg("n1", 5001, 200);
    r.deregister_after = Duration::from_millis(300);
    c.register(&r).await.unwrap();
    c.update_check(&r.check_id(), true, "").await.unwrap();
    assert!(d.services("dstash")["n1"]);
    eventually("the TTL to lapse", || {
        d.services("dstash").get("n1") == Some(&false)
    })
    .await;
    eventually("the service to be reaped", || {
        d.services("dstash").is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_node_registers_passes_only_while_serving_and_comes_back_after_an_agent_restart() {
    let d = ConsulDouble::start().await;
    let c = Consul::new(&d.url()).unwrap();
    let (serving, rx) = tokio::sync::watch::channel(false);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(keep_registered(
        c.clone(),
        reg("n1", 5001, 300),
        rx,
        async {
            let _ = stopped.await;
        },
    ));
    eventually("registration", || {
        d.services("dstash").get("n1") == Some(&false)
    })
    .await;
    serving.send(true).unwrap();
    eventually("passing", || d.services("dstash").get("n1") == Some(&true)).await;
    // Passing keeps it passing past several TTLs.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(d.services("dstash")["n1"]);

    d.restart();
    assert!(d.services("dstash").is_empty());
    eventually("re-registration", || {
        d.services("dstash").get("n1") == Some(&true)
    })
    .await;

    serving.send(false).unwrap(); // draining
    eventually("failing while draining", || {
        d.services("dstash").get("n1") == Some(&false)
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(d.services("dstash").is_empty(), "deregistered on shutdown");
}

#[tokio::test]
async fn the_watch_follows_the_passing_set_and_rides_out_consul_trouble() {
    let d = ConsulDouble::start().await;
    let c = Consul::new(&d.url()).unwrap();
    for (id, port) in [("a", 1), ("b", 2)] {
        c.register(&reg(id, port, 60_000)).await.unwrap();
        c.update_check(&format!("dstash:{id}:ttl"), true, "")
            .await
            .unwrap();
    }
    let mut opts = WatchOptions::new("dstash");
    opts.wait = Duration::from_secs(2);
    opts.min_interval = Duration::from_millis(20);
    opts.stable_for = Duration::from_millis(300);
    let rx = watch(c.clone(), opts);
    let ids = |rx: &tokio::sync::watch::Receiver<Vec<dstash_membership::Instance>>| {
        rx.borrow().iter().map(|i| i.id.clone()).collect::<Vec<_>>()
    };
    eventually("the first set", || ids(&rx) == ["a", "b"]).await;

    // b stops passing (killed): it leaves at once.
    c.update_check("dstash:b:ttl", false, "").await.unwrap();
    eventually("b to leave", || ids(&rx) == ["a"]).await;
    // b comes back: only after it has been passing for the stable time.
    let back = Instant::now();
    c.update_check("dstash:b:ttl", true, "").await.unwrap();
    eventually("b to return", || ids(&rx) == ["a", "b"]).await;
    assert!(
        back.elapsed() >= Duration::from_millis(280),
        "entered after {:?}",
        back.elapsed()
    );

    // Consul in trouble: the last set stays.
    d.set_leader_lost(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ids(&rx), ["a", "b"]);
    d.set_leader_lost(false);

    // The index goes backwards (a restore): the watch starts over and still follows.
    d.index_backwards();
    c.register(&reg("c", 3, 60_000)).await.unwrap();
    c.update_check("dstash:c:ttl", true, "").await.unwrap();
    eventually("c after the index went backwards", || {
        ids(&rx) == ["a", "b", "c"]
    })
    .await;
}

#[tokio::test]
async fn a_node_that_went_away_is_reported_failing_without_spinning() {
    let d = ConsulDouble::start().await;
    let c = Consul::new(&d.url()).unwrap();
    let (serving, rx) = tokio::sync::watch::channel(true);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(keep_registered(c, reg("n1", 5001, 300), rx, async {
        let _ = stopped.await;
    }));
    eventually("passing", || d.services("dstash").get("n1") == Some(&true)).await;
    drop(serving); // the node is gone but the loop is not stopped yet
    eventually("failing", || d.services("dstash").get("n1") == Some(&false)).await;
    let calls = d.check_updates();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more = d.check_updates() - calls;
    // One update per third of the 300 ms TTL: a handful, not a spin.
    assert!(more <= 6, "{more} check updates in 300 ms");
    stop.send(()).unwrap();
    task.await.unwrap();
}
