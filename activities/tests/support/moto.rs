//! moto for integration tests: the launcher `windlass-standins` shares with the system
//! tests. Each test starts its own server, so no state leaks between tests.

pub use windlass_standins::moto::Moto;

pub use windlass_test_support::free_port;

/// Starts moto, with a clear message when scripts/setup.sh has not installed it.
pub async fn start() -> Moto {
    Moto::start()
        .await
        .expect("moto_server: run scripts/setup.sh (it installs moto into .venv)")
}
