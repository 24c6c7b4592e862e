//! Generates the gRPC code with a vendored protoc: the build needs nothing outside cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY (edition 2021: set_var is safe): build scripts are single-threaded.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=dstash/v1/dstash.proto");
    // `bytes` fields decode as `Bytes`: zero-copy slices of the received frame, not one
    // allocation and copy per key and value.
    tonic_prost_build::configure()
        .bytes(".")
        .compile_protos(&["dstash/v1/dstash.proto"], &["."])?;
    Ok(())
}
