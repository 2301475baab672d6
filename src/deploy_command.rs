//! `windlass deploy`: asks the API to deploy an environment and, with `--follow`, shows the
//! deployment's steps as they change and its live log (the run's Server-Sent Events) until
//! it ends. The exit status is the deployment's: 0 deployed, 1 anything else.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// Base URL of the Windlass API.
    #[arg(
        long,
        env = "WINDLASS_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,
    /// A bearer token (an API token `wlt_...` or an OIDC token).
    #[arg(long, env = "WINDLASS_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long, env = "WINDLASS_ORGANIZATION")]
    pub organization: uuid::Uuid,
    #[arg(long)]
    pub environment: uuid::Uuid,
    /// `service=image`, for each service whose image changes (repeatable).
    #[arg(long = "image", value_parser = parse_image)]
    pub images: Vec<(String, String)>,
    /// Makes a retried command start no second deployment.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Show progress and the live log until the deployment ends; exit non-zero if it
    /// does not deploy.
    #[arg(long)]
    pub follow: bool,
}

fn parse_image(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((service, image)) if !service.is_empty() && !image.is_empty() => {
            Ok((service.to_owned(), image.to_owned()))
        }
        _ => Err(format!("{text:?} is not service=image")),
    }
}

pub async fn run(args: DeployArgs) -> anyhow::Result<std::process::ExitCode> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("windlass-cli/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let base = args.api_url.trim_end_matches('/');
    let images: BTreeMap<_, _> = args.images.iter().cloned().collect();
    let mut request = http
        .post(format!(
            "{base}/v1/organizations/{}/environments/{}/deployments",
            args.organization, args.environment
        ))
        .bearer_auth(&args.token)
        .json(&serde_json::json!({ "images": images }));
    if let Some(key) = &args.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.context("calling the Windlass API")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "the API refused the deployment ({status}): {}",
            body["detail"].as_str().unwrap_or("no detail")
        );
    }
    let run_id = body["run"]["id"].as_str().unwrap_or_default().to_owned();
    println!(
        "deployment revision {} queued as run {run_id}",
        body["deployment"]["revision"]
    );
    if !args.follow {
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let end = follow(&http, base, &args.token, args.organization, &run_id).await?;
    let status = end["status"].as_str().unwrap_or("unknown");
    println!("\nrun {run_id} {status}");
    if let Some(error) = end["error"].as_str() {
        println!("  {error}");
    }
    Ok(if status == "succeeded" {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Streams the run's events to the terminal; returns the run as the `end` event gives it.
async fn follow(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    organization: uuid::Uuid,
    run_id: &str,
) -> anyhow::Result<Value> {
    let url = format!("{base}/v1/organizations/{organization}/runs/{run_id}/events");
    let mut last_event_id: Option<String> = None;
    let mut progress = Progress::default();
    // The stream may drop (a proxy timeout, an API restart): resume where it stopped.
    for _attempt in 0..10 {
        let mut request = http
            .get(&url)
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = &last_event_id {
            request = request.header("last-event-id", id);
        }
        let mut response = match request.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => bail!("following the run failed: {}", r.status()),
            Err(error) => {
                eprintln!("(reconnecting: {error})");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut parser = EventParser::default();
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => {
                    eprintln!("(reconnecting: {error})");
                    break;
                }
            };
            for event in parser.feed(&chunk) {
                if let Some(id) = &event.id {
                    last_event_id = Some(id.clone());
                }
                let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                match event.name.as_str() {
                    "log" => progress.log(&data),
                    "step" => progress.step(&data),
                    "end" => return Ok(data),
                    _ => {}
                }
            }
        }
    }
    bail!("lost the run's event stream too many times")
}

/// What has been shown: each step's last status, to print only changes.
#[derive(Default)]
struct Progress {
    steps: BTreeMap<String, String>,
}

impl Progress {
    fn step(&mut self, step: &Value) {
        let key = step["key"].as_str().unwrap_or_default().to_owned();
        let status = step["status"].as_str().unwrap_or_default().to_owned();
        if self.steps.get(&key) == Some(&status) {
            return;
        }
        self.steps.insert(key.clone(), status.clone());
        let done = self
            .steps
            .values()
            .filter(|s| matches!(s.as_str(), "succeeded" | "failed" | "cancelled"))
            .count();
        let mark = match status.as_str() {
            "succeeded" => "ok",
            "failed" => "FAILED",
            "retrying" => "retrying",
            "cancelled" => "cancelled",
            _ => "..",
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{done:>3}/{:<3}] {mark:<9} {key}", self.steps.len());
        if let Some(error) = step["last_error"]
            .as_str()
            .filter(|_| status != "succeeded")
        {
            let _ = writeln!(out, "          {error}");
        }
    }

    fn log(&self, line: &Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "          {} | {}",
            line["step"].as_str().unwrap_or_default(),
            line["line"].as_str().unwrap_or_default()
        );
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Event {
    name: String,
    id: Option<String>,
    data: String,
}

/// Server-Sent Events framing: `field: value` lines, events separated by a blank line.
#[derive(Default)]
struct EventParser {
    buffer: String,
    current: Event,
}

impl EventParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buffer.push_str(&String::from_utf8_lossy(bytes));
        let mut events = Vec::new();
        while let Some(at) = self.buffer.find('\n') {
            let line = self.buffer[..at].trim_end_matches('\r').to_owned();
            self.buffer.drain(..=at);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if !event.data.is_empty() || !event.name.is_empty() {
                    events.push(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.name = value.to_owned(),
                "id" => self.current.id = Some(value.to_owned()),
                "data" => {
                    if !self.current.data.is_empty() {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                }
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut parser = EventParser::default();
        assert!(
            parser
                .feed(b": keep-alive\n\nevent: log\nid: a:1:")
                .is_empty()
        );
        let events = parser.feed(b"2\ndata: {\"line\":\"x\"}\n\nevent: end\ndata: {}\n\n");
        assert_eq!(
            events,
            vec![
                Event {
                    name: "log".into(),
                    id: Some("a:1:2".into()),
                    data: "{\"line\":\"x\"}".into()
                },
                Event {
                    name: "end".into(),
                    id: None,
                    data: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn images_are_service_equals_image() {
        assert_eq!(
            parse_image("web=shop/web:2").unwrap(),
            ("web".into(), "shop/web:2".into())
        );
        assert!(parse_image("web").is_err());
        assert!(parse_image("=x").is_err());
    }
}
