use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("WINDLASS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,temporalio_sdk_core=warn,h2=warn,hyper=warn"))
        // The AWS SDK logs raw request and response bodies at trace, and KMS Encrypt and
        // Decrypt bodies hold data keys: capped whatever WINDLASS_LOG says.
        .add_directive("aws_smithy_runtime=info".parse().expect("static directive"))
        .add_directive(
            "aws_smithy_runtime_api=info"
                .parse()
                .expect("static directive"),
        )
        .add_directive(
            "aws_smithy_http_client=info"
                .parse()
                .expect("static directive"),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// For `windlass provider-standin`, which terraform starts: warnings only unless
/// `WINDLASS_PROVIDER_LOG` says otherwise (terraform folds a plugin's stderr into its own
/// log), never the worker's `WINDLASS_LOG` it inherits.
pub fn init_stderr() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_env("WINDLASS_PROVIDER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .init();
}
