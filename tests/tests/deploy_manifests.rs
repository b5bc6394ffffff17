//! The Kubernetes manifests of docs/deploy.md.
//!
//! tools/deploy_manifests.py extracts every ```yaml block (each `---`
//! document of it) and validates it with kubernetes-validate, strict, for
//! the oldest Kubernetes the page claims and the newest the validator
//! bundles. The tests here assert on that, then check what a schema cannot:
//! probes on routes a real `switchyard serve` answers without the key, the
//! port, the listen address, env names and flags the binary has (from its
//! `--help`, not from its source), the grace period against the request
//! timeout, selectors against labels, and the indexed Job's sharding and
//! resuming.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use switchyard_tests::http::{send, Server};
use switchyard_tests::{root, switchyard_bin, temp_dir, venv_python};

/// The oldest Kubernetes docs/deploy.md claims, and the newest kubernetes-validate 1.37.0 bundles.
const VERSIONS: &[&str] = &["1.33", "1.37"];
/// Kinds without a bundled schema (custom resources), checked only by cross-references here.
const CUSTOM_KINDS: &[&str] = &["ServiceMonitor"];
/// What the grace period must leave after pre-stop and the request timeout (docs/deploy.md).
const EXIT_MARGIN_S: u64 = 10;

/// What the script said about a Markdown file.
struct Report {
    validator: String,
    documents: Vec<Value>,
}

fn validate(markdown: &std::path::Path) -> Report {
    let out = Command::new(venv_python())
        .arg(root().join("tools/deploy_manifests.py"))
        .arg(markdown)
        .args(VERSIONS)
        .output()
        .expect("tools/deploy_manifests.py runs");
    assert!(out.status.success(), "tools/deploy_manifests.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    Report {
        validator: v["validator"].as_str().expect("validator").to_string(),
        documents: v["documents"].as_array().expect("documents").clone(),
    }
}

fn report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| validate(&root().join("docs/deploy.md")))
}

fn name(doc: &Value) -> String {
    format!("{} {}", doc["kind"].as_str().unwrap_or("?"), doc["metadata"]["name"].as_str().unwrap_or("?"))
}

/// Every document of a kind.
fn of_kind(kind: &str) -> Vec<&'static Value> {
    report().documents.iter().map(|e| &e["doc"]).filter(|d| d["kind"] == kind).collect()
}

/// The Deployments that run `serve`.
fn serve_deployments() -> Vec<&'static Value> {
    let found: Vec<_> = of_kind("Deployment").into_iter().filter(|d| subcommand(container(d)) == "serve").collect();
    assert!(found.len() >= 2, "docs/deploy.md should hold a CPU and a GPU Deployment of `serve`");
    found
}

/// The only indexed Job.
fn job() -> &'static Value {
    let jobs = of_kind("Job");
    assert_eq!(jobs.len(), 1, "docs/deploy.md should hold one Job");
    jobs[0]
}

fn pod_spec(doc: &'static Value) -> &'static Value {
    doc.pointer("/spec/template/spec").unwrap_or_else(|| panic!("{} has no pod template", name(doc)))
}

/// The workload's one container.
fn container(doc: &'static Value) -> &'static Value {
    let containers = pod_spec(doc)["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{}: one container expected", name(doc));
    &containers[0]
}

/// `serve` or `embed`: the image's entrypoint is `switchyard`, the first argument the subcommand.
fn subcommand(c: &'static Value) -> &'static str {
    assert!(c.get("command").is_none(), "{}: the image's entrypoint runs switchyard; set args only", c["name"]);
    c["args"][0].as_str().expect("args[0] is the subcommand")
}

fn args(c: &'static Value) -> Vec<&'static str> {
    c["args"].as_array().expect("args").iter().map(|a| a.as_str().expect("a string argument")).collect()
}

/// A literal env value of a container.
fn env(c: &'static Value, key: &str) -> Option<&'static str> {
    c["env"].as_array()?.iter().find(|e| e["name"] == key).and_then(|e| e["value"].as_str())
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// Whether a selector's labels all appear in `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_labels(doc: &Value) -> BTreeMap<String, String> {
    labels(&doc["spec"]["template"]["metadata"]["labels"])
}

/// `switchyard <subcommand> --help`.
fn help(subcommand: &str) -> String {
    let out = Command::new(switchyard_bin()).args([subcommand, "--help"]).output().expect("switchyard runs");
    assert!(out.status.success(), "switchyard {subcommand} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// The environment variables a subcommand's help lists (`[env: NAME=...]`, `[env: NAME]`).
fn help_env(subcommand: &str) -> BTreeSet<String> {
    let text = help(subcommand);
    let names: BTreeSet<String> = text
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap_or_default().to_string())
        .collect();
    assert!(names.len() > 10, "no `[env: ...]` in `switchyard {subcommand} --help`:\n{text}");
    names
}

/// The long flags a subcommand's help lists.
fn help_flags(subcommand: &str) -> BTreeSet<String> {
    help(subcommand)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split(['=', '<']).next().unwrap_or_default().to_string())
        .collect()
}

/// The container port a probe or Service's `port` / `targetPort` names (by name or number).
fn resolve_port(c: &Value, port: &Value) -> u64 {
    let ports = c["ports"].as_array().expect("container ports");
    match port {
        Value::String(n) => ports
            .iter()
            .find(|p| p["name"] == *n)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no container port named {n}")),
        Value::Number(n) => n.as_u64().expect("a port number"),
        other => panic!("not a port: {other}"),
    }
}

fn probe_path(c: &'static Value, probe: &str) -> &'static str {
    c[probe]["httpGet"]["path"].as_str().unwrap_or_else(|| panic!("{}: no {probe} with an httpGet path", c["name"]))
}

#[test]
fn every_yaml_block_is_a_kubernetes_object_valid_in_strict_mode() {
    let r = report();
    let kinds: BTreeSet<&str> = r.documents.iter().filter_map(|e| e["doc"]["kind"].as_str()).collect();
    for kind in ["Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "PersistentVolumeClaim", "Job"] {
        assert!(kinds.contains(kind), "no {kind} in docs/deploy.md (found {kinds:?})");
    }
    for e in &r.documents {
        let at = format!("docs/deploy.md block {} (line {}) {}", e["block"], e["line"], name(&e["doc"]));
        assert!(e.get("yaml_error").is_none(), "{at}: {}", e["yaml_error"]);
        for v in VERSIONS {
            let verdict = e["schemas"][v].as_str().expect("a verdict per version");
            assert!(verdict == "ok" || verdict == "no schema", "{at} on Kubernetes {v}: {verdict}");
        }
    }
}

#[test]
fn only_custom_resources_go_without_a_schema() {
    for e in &report().documents {
        let kind = e["doc"]["kind"].as_str().unwrap_or_default();
        let unchecked = VERSIONS.iter().any(|v| e["schemas"][v] == "no schema");
        assert_eq!(unchecked, CUSTOM_KINDS.contains(&kind), "{}: schema verdicts {}", name(&e["doc"]), e["schemas"]);
    }
}

#[test]
fn the_validator_is_the_pinned_one_the_page_names() {
    let version = report().validator.strip_prefix("kubernetes-validate ").expect("kubernetes-validate");
    let pins = std::fs::read_to_string(root().join("ci/requirements.txt")).unwrap();
    assert!(pins.lines().any(|l| l.trim() == format!("kubernetes-validate=={version}")), "not pinned: {version}");
    let page = std::fs::read_to_string(root().join("docs/deploy.md")).unwrap();
    let section = page.split("## How these manifests are checked").nth(1).expect("the section on checking");
    let section = section.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(section.contains(&format!("kubernetes-validate](https://pypi.org/project/kubernetes-validate/) {version}")));
    for v in VERSIONS {
        assert!(
            section.contains(&format!("Kubernetes {v}")) || section.contains(&format!("and {v}")),
            "{v}: {section}"
        );
    }
}

#[test]
fn the_validator_refuses_an_unknown_field() {
    let dir = temp_dir("deploy-typo");
    let md = dir.join("typo.md");
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n";
    std::fs::write(&md, format!("text\n\n```yaml\n{manifest}```\n")).unwrap();
    let r = validate(&md);
    assert_eq!(r.documents.len(), 1);
    for v in VERSIONS {
        let verdict = r.documents[0]["schemas"][v].as_str().unwrap();
        assert!(verdict.contains("'replica' was unexpected"), "{v}: {verdict}");
    }
}

#[test]
fn probes_are_health_for_liveness_and_ready_for_startup_and_readiness() {
    for d in serve_deployments() {
        let c = container(d);
        assert_eq!(probe_path(c, "livenessProbe"), "/health", "{}", name(d));
        assert_eq!(probe_path(c, "readinessProbe"), "/ready", "{}", name(d));
        assert_eq!(probe_path(c, "startupProbe"), "/ready", "{}", name(d));
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            assert_eq!(resolve_port(c, &c[probe]["httpGet"]["port"]), 3003, "{} {probe}", name(d));
        }
    }
}

#[test]
fn the_cpu_deployment_env_starts_a_server_that_answers_probes_without_the_key_and_metrics_with_it() {
    let cpu = serve_deployments().into_iter().find(|d| env(container(d), "DEVICE") == Some("cpu")).expect("a CPU one");
    let c = container(cpu);
    let key = "deploy-test-key";
    // The manifest's literal values; the Secret's by the test key. The fixture's flags win over
    // the env for what must differ here: a free port, the local plugins and models.
    let mut vars: Vec<(&str, &str)> = Vec::new();
    for e in c["env"].as_array().expect("env") {
        let n = e["name"].as_str().unwrap();
        match e["value"].as_str() {
            Some(v) => vars.push((n, v)),
            None if e.pointer("/valueFrom/secretKeyRef").is_some() => vars.push((n, key)),
            None => panic!("{n}: only literal values and Secrets are expected"),
        }
    }
    let server = Server::start("deploy", &["--host", "127.0.0.1"], &vars);
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let path = probe_path(c, probe);
        let r = send("GET", &format!("{}{path}", server.url), &[], b"");
        assert_eq!(r.status, 200, "{probe} {path}: {:?}", r.body);
    }
    let metrics = format!("{}{}", server.url, pod_spec_annotation(cpu, "prometheus.io/path"));
    assert_eq!(send("GET", &metrics, &[], b"").status, 401, "/metrics should need the key");
    let bearer = format!("Bearer {key}");
    let r = send("GET", &metrics, &[("authorization", &bearer)], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.as_str().unwrap_or_default().contains("# TYPE switchyard_requests_total counter"));
}

fn pod_spec_annotation(doc: &'static Value, key: &str) -> &'static str {
    doc["spec"]["template"]["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no {key} annotation", name(doc)))
}

#[test]
fn the_container_port_is_switchyard_port_3003_everywhere() {
    let service = of_kind("Service")[0];
    let service_ports = service["spec"]["ports"].as_array().expect("service ports");
    for d in serve_deployments() {
        let c = container(d);
        assert_eq!(env(c, "SWITCHYARD_PORT"), Some("3003"), "{}", name(d));
        assert_eq!(resolve_port(c, &Value::String("http".into())), 3003, "{}", name(d));
        assert_eq!(pod_spec_annotation(d, "prometheus.io/port"), "3003", "{}", name(d));
        for p in service_ports {
            assert_eq!(p["port"], 3003, "{}", name(service));
            assert_eq!(resolve_port(c, &p["targetPort"]), 3003, "{} -> {}", name(service), name(d));
        }
    }
}

#[test]
fn serve_listens_on_every_interface() {
    for d in serve_deployments() {
        assert_eq!(env(container(d), "SWITCHYARD_HOST"), Some("0.0.0.0"), "{}: 127.0.0.1 fails every probe", name(d));
    }
}

#[test]
fn every_env_var_is_one_the_binary_reads() {
    for d in of_kind("Deployment").into_iter().chain(of_kind("Job")) {
        let c = container(d);
        let known = help_env(subcommand(c));
        for e in c["env"].as_array().expect("env") {
            let n = e["name"].as_str().unwrap();
            assert!(known.contains(n), "{}: `{n}` is not in `switchyard {} --help`", name(d), subcommand(c));
        }
    }
}

#[test]
fn every_flag_is_one_the_subcommand_has() {
    for d in of_kind("Deployment").into_iter().chain(of_kind("Job")) {
        let c = container(d);
        let flags = help_flags(subcommand(c));
        assert!(flags.contains("--plugin-dir"), "{flags:?}");
        for a in args(c).into_iter().filter(|a| a.starts_with("--")) {
            assert!(flags.contains(a), "{}: `{a}` is not a flag of `switchyard {}`", name(d), subcommand(c));
        }
    }
}

#[test]
fn the_grace_period_covers_pre_stop_and_the_request_timeout() {
    for d in serve_deployments() {
        let c = container(d);
        let timeout_ms: u64 = env(c, "SWITCHYARD_REQUEST_TIMEOUT_MS")
            .unwrap_or_else(|| panic!("{}: set SWITCHYARD_REQUEST_TIMEOUT_MS, the drain depends on it", name(d)))
            .parse()
            .expect("a number of ms");
        assert!(timeout_ms > 0, "{}: 0 (no deadline) leaves the drain unbounded", name(d));
        let pre_stop = c.pointer("/lifecycle/preStop/sleep/seconds").and_then(Value::as_u64).unwrap_or(0);
        assert!(
            pre_stop > 0,
            "{}: a preStop sleep lets the endpoints update before the server stops accepting",
            name(d)
        );
        let grace = pod_spec(d)["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
        let needed = pre_stop + timeout_ms.div_ceil(1000) + EXIT_MARGIN_S;
        assert!(
            grace >= needed,
            "{}: grace {grace} s < preStop {pre_stop} s + timeout {timeout_ms} ms + {EXIT_MARGIN_S} s",
            name(d)
        );
    }
}

#[test]
fn selectors_match_the_pods_they_mean() {
    let serve = serve_deployments();
    for d in &serve {
        let own = labels(&d["spec"]["selector"]["matchLabels"]);
        assert!(selects(&own, &pod_labels(d)), "{}: selector {own:?} misses its pods", name(d));
        for other in serve.iter().filter(|o| !std::ptr::eq(**o, *d)) {
            assert!(!selects(&own, &pod_labels(other)), "{} selects the pods of {}", name(d), name(other));
        }
    }
    let service = of_kind("Service")[0];
    let by_service = labels(&service["spec"]["selector"]);
    let by_pdb = labels(&of_kind("PodDisruptionBudget")[0]["spec"]["selector"]["matchLabels"]);
    for d in &serve {
        assert!(selects(&by_service, &pod_labels(d)), "{} misses {}", name(service), name(d));
        assert!(selects(&by_pdb, &pod_labels(d)), "the PodDisruptionBudget misses {}", name(d));
    }
    assert!(!selects(&by_service, &pod_labels(job())), "{} would send requests to the Job's pods", name(service));
    let monitor = of_kind("ServiceMonitor")[0];
    let by_monitor = labels(&monitor["spec"]["selector"]["matchLabels"]);
    assert!(selects(&by_monitor, &labels(&service["metadata"]["labels"])), "the ServiceMonitor misses the Service");
}

#[test]
fn the_service_monitor_scrapes_metrics_with_the_api_key_secret() {
    let monitor = of_kind("ServiceMonitor")[0];
    let service = of_kind("Service")[0];
    let port_names: Vec<&Value> = service["spec"]["ports"].as_array().unwrap().iter().map(|p| &p["name"]).collect();
    let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
    assert!(!endpoints.is_empty());
    for d in serve_deployments() {
        let key_ref = container(d)["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "SWITCHYARD_API_KEY")
            .and_then(|e| e.pointer("/valueFrom/secretKeyRef"))
            .unwrap_or_else(|| panic!("{}: SWITCHYARD_API_KEY from a Secret", name(d)));
        assert_eq!(pod_spec_annotation(d, "prometheus.io/path"), "/metrics", "{}", name(d));
        for ep in endpoints {
            assert!(
                port_names.contains(&&ep["port"]),
                "endpoint port {} is not a port of {}",
                ep["port"],
                name(service)
            );
            assert_eq!(ep["path"], "/metrics");
            assert_eq!(ep["authorization"]["type"], "Bearer");
            assert_eq!(ep["authorization"]["credentials"], *key_ref, "the scrape must send the server's key");
        }
    }
}

#[test]
fn the_job_is_indexed_and_shards_by_its_completion_index() {
    let j = job();
    assert_eq!(j["spec"]["completionMode"], "Indexed");
    let completions = j["spec"]["completions"].as_u64().expect("completions");
    let a = args(container(j));
    assert_eq!(a[0], "embed");
    let shard = a.iter().position(|x| *x == "--shard").map(|i| a[i + 1]).expect("--shard I/N");
    assert_eq!(shard, format!("$(JOB_COMPLETION_INDEX)/{completions}"), "N must equal completions");
}

#[test]
fn the_job_resumes_a_per_index_file_on_a_persistent_claim() {
    let j = job();
    let c = container(j);
    let a = args(c);
    assert!(a.contains(&"--resume"), "{a:?}");
    let out = a.iter().position(|x| *x == "--out").map(|i| a[i + 1]).expect("--out FILE");
    assert!(out.contains("$(JOB_COMPLETION_INDEX)"), "`{out}`: each index needs its own file");
    let mount = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| out.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("`{out}` is on no volume: a retried pod would start over"));
    assert_ne!(mount["readOnly"], true, "the output volume is mounted read-only");
    let volume = pod_spec(j)["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let claim =
        volume["persistentVolumeClaim"]["claimName"].as_str().expect("a persistentVolumeClaim: it outlives the pods");
    let claims: Vec<&str> =
        of_kind("PersistentVolumeClaim").iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
    assert!(claims.contains(&claim), "claim {claim} is not among {claims:?}");
}

#[test]
fn a_retried_shard_is_a_new_pod_and_an_interrupted_one_is_not_a_failure() {
    let j = job();
    assert_eq!(pod_spec(j)["restartPolicy"], "Never", "podFailurePolicy needs restartPolicy: Never");
    assert!(j["spec"]["backoffLimitPerIndex"].as_u64().unwrap_or(0) > 0, "each shard needs retries of its own");
    assert!(
        pod_spec(j)["terminationGracePeriodSeconds"].as_u64().is_some(),
        "finishing the batch needs a set grace period"
    );
    let rules = j["spec"]["podFailurePolicy"]["rules"].as_array().expect("podFailurePolicy rules");
    let ignores_143 = rules.iter().any(|r| {
        r["action"] == "Ignore"
            && r["onExitCodes"]["operator"] == "In"
            && r["onExitCodes"]["values"].as_array().is_some_and(|v| v.contains(&Value::from(143)))
    });
    assert!(ignores_143, "exit 143 (SIGTERM: the batch was finished, --resume continues) must not count: {rules:?}");
}
