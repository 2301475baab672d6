//! The generated protocol types (build.rs compiles `proto/`).

#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

#[allow(clippy::all, clippy::pedantic, missing_docs, dead_code)]
pub mod plugin {
    tonic::include_proto!("plugin");
}
