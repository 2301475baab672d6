//! Compiles the plugin protocol's service definitions with protox (no protoc needed), as
//! the Temporal SDK does for its own.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["tfplugin6.proto", "grpc_controller.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .compile_fds(descriptors)?;
    Ok(())
}
