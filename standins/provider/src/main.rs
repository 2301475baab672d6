//! windlass-provider-standin: the terraform provider stand-in as a binary of its own (see
//! the library's documentation).

use std::path::PathBuf;

const USAGE: &str = "usage: windlass-provider-standin --schema PROVIDER-VERSION.json\n\
    (a terraform plugin: terraform starts it; run alone, it only explains this)";

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WINDLASS_PROVIDER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let schema_path = match (args.next().as_deref(), args.next()) {
        (Some("--schema"), Some(path)) => PathBuf::from(path),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(error) = windlass_provider_standin::run_plugin(&schema_path) {
        eprintln!("{error:#}\n{USAGE}");
        std::process::exit(1);
    }
    Ok(())
}
