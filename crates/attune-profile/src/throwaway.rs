//! A throwaway PostgreSQL cluster on loopback, for tests, benchmarks and trials: `initdb` into a
//! temporary folder, a server on a free port with its socket in that folder, stopped (and the
//! folder removed) when dropped. It needs the server binaries (`just setup-postgres`: Debian's
//! `postgresql-15`); as root it runs them as the `postgres` user, since the server refuses root.

use crate::StoreError;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct ThrowawayCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn failed(message: String) -> StoreError {
    StoreError::Open { path: "throwaway PostgreSQL cluster".into(), message }
}

/// The folder of `initdb` and `pg_ctl`: `$ATTUNE_PG_BIN`, the newest `/usr/lib/postgresql/*/bin`
/// (Debian keeps them off `PATH`), or `PATH`.
pub fn server_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ATTUNE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(PathBuf::from).find(|d| d.join("initdb").is_file())
}

impl ThrowawayCluster {
    /// Make and start a cluster; it is stopped when dropped.
    pub fn start() -> Result<ThrowawayCluster, StoreError> {
        let bin = server_binaries()
            .ok_or_else(|| failed("no PostgreSQL server binaries (initdb): run `just setup-postgres`".into()))?;
        let dir = tempfile::Builder::new()
            .prefix("attune-pg-")
            .tempdir()
            .map_err(|e| failed(format!("no temporary folder: {e}")))?;
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()))?;
        }
        let mut cluster = ThrowawayCluster { dir, bin, port: 0, as_postgres };
        let data = cluster.data_dir();
        run(cluster
            .server_command("initdb")
            .args(["--auth=trust", "--no-sync", "--username=postgres", "--encoding=UTF8", "-D"])
            .arg(&data))?;
        // A free port now may be taken by the time the server binds it: a few tries.
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
                cluster.port,
                cluster.dir.path().display()
            );
            let log = cluster.dir.path().join("server.log");
            match run(cluster
                .server_command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(&log)
                .args(["-w", "start"]))
            {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket folder and data of the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of one of its databases (as the superuser `postgres`, trusted on loopback).
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Make a new, empty database and return its URL.
    pub fn create_database(&self, name: &str) -> Result<String, StoreError> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(failed(format!("database name {name:?}: letters, digits and _ only")));
        }
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.server_command("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]).output();
    }
}

fn free_port() -> Result<u16, StoreError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| failed(format!("no free port on loopback: {e}")))?;
    Ok(listener.local_addr().map_err(|e| failed(e.to_string()))?.port())
}

fn run(command: &mut Command) -> Result<(), StoreError> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| failed(format!("{shown}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(format!(
            "{shown}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
