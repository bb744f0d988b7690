#!/usr/bin/env python3
"""Keeps the Dockerfile and the Kubernetes manifests in step with the code.

    python3 deploy/check.py [path/to/atoll]      (default: target/debug/atoll)

Nothing here needs a container engine or a cluster, so scripts/test.sh runs
it everywhere. It checks what would otherwise break silently when the code
changes: flags that `atoll serve` no longer has, probe paths it no longer
serves, ports that disagree, a grace period shorter than the drain, a
read-only root where atoll writes, environment variables it does not read.
Then it serves a bundle with the Deployment's own arguments, environment and
mounts (remapped to temporary directories), probes it as the kubelet would,
runs the image's HEALTHCHECK command against it, and stops it with SIGTERM.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit("deploy/check.py needs PyYAML: python3 -m pip install pyyaml (or apt-get install python3-yaml)")

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
failures = []
checked = 0


def check(holds, what):
    """Records one assertion; `what` says what must hold."""
    global checked
    checked += 1
    if not holds:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)
    return holds


# --- what the code provides -------------------------------------------------

def serve_options(atoll):
    """`atoll serve --help`: each long option, whether it takes a value, and
    the defaults it prints."""
    help_text = subprocess.run([atoll, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    options, defaults = {}, {}
    current = None
    for line in help_text.splitlines():
        m = re.match(r"^\s+(?:-(\w), )?(--[a-z][a-z0-9-]*)( <[A-Z_]+>)?", line)
        if m:
            current = m.group(2)
            options[current] = bool(m.group(3))
            if m.group(1):
                options["-" + m.group(1)] = bool(m.group(3))
        d = re.search(r"\[default: ([^\]]+)\]", line)
        if d and current:
            defaults[current] = d.group(1)
    return options, defaults


def served_operation_paths():
    """The paths atoll answers itself, from `operations` in handler.rs."""
    src = (ROOT / "crates/atoll-http/src/handler.rs").read_text()
    body = src[src.index("fn operations("):]
    body = body[: body.index("\n}\n")]
    return set(re.findall(r'"(/-/[\w-]+)"\s*=>', body))


def env_vars_read():
    """Environment variables the code reads for settings the image sets."""
    names = set(re.findall(r'env = "(ATOLL_[A-Z_]+)"', (ROOT / "crates/atoll/src/options.rs").read_text()))
    names |= set(re.findall(r'env = "(ATOLL_[A-Z_]+)"', (ROOT / "crates/atoll/src/commands/serve.rs").read_text()))
    names |= set(re.findall(r'var_os\("(ATOLL_[A-Z_]+)"\)', (ROOT / "crates/atoll-engine/src/config.rs").read_text()))
    return names


def parse_serve_args(args, options):
    """Splits `serve` arguments into the app and {option: value}, checking
    each option against the help."""
    app, given = None, {}
    i = 1 if args and args[0] == "serve" else 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            name, _, inline = a.partition("=")
            check(name in options, f"`atoll serve` has the option {name}")
            if options.get(name) and not inline:
                i += 1
                given[name] = args[i] if i < len(args) else None
            else:
                given[name] = inline or True
        else:
            check(app is None, f"one app argument to serve, not {app!r} and {a!r}")
            app = a
        i += 1
    if "-l" in given:
        given["--listen"] = given.pop("-l")
    return app, given


def port_of(listen):
    return int(listen.rsplit(":", 1)[1])


# --- the Dockerfile ---------------------------------------------------------

def dockerfile(path):
    """Instructions as (stage, INSTRUCTION, text), continuation lines joined."""
    lines, joined = [], ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.endswith("\\"):
            joined += raw[:-1] + " "
            continue
        joined += raw
        if joined.strip():
            lines.append(joined.strip())
        joined = ""
    stage, out = -1, []
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage += 1
        out.append((stage, instr, rest.strip()))
    return out


def env_of(rest):
    return dict(kv.split("=", 1) for kv in rest.split())


def dockerignore_allows(patterns, path):
    """Docker's rule: the last pattern matching the path or a parent wins."""
    def regex(p):
        r = re.escape(p).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        return re.compile(r.replace(r"\?", "[^/]") + "$")
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    allowed = True
    for p in patterns:
        negate = p.startswith("!")
        rx = regex(p.lstrip("!"))
        if any(rx.match(c) for c in candidates):
            allowed = negate
    return allowed


def check_dockerfile(options, operations, env_names):
    instrs = dockerfile(ROOT / "Dockerfile")
    final = max(s for s, _, _ in instrs)
    build = [(i, r) for s, i, r in instrs if s == 0]
    run = [(i, r) for s, i, r in instrs if s == final]
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())

    # The build: the dist profile exists and the toolchain is new enough.
    runs = " ".join(r for i, r in build if i == "RUN")
    check("cargo build --profile dist -p atoll --locked" in runs, "the build stage runs cargo build --profile dist -p atoll --locked")
    check("dist" in cargo.get("profile", {}), "Cargo.toml defines [profile.dist]")
    arg = next((r for s, i, r in instrs if i == "ARG" and r.startswith("RUST_VERSION=")), "RUST_VERSION=0")
    have = tuple(int(x) for x in arg.split("=", 1)[1].split("."))
    need = tuple(int(x) for x in cargo["workspace"]["package"]["rust-version"].split("."))
    check(have >= need[: len(have)], f"the image's Rust ({arg}) is at least the workspace's rust-version {need}")

    # The context: every COPY source exists, passes .dockerignore, and so do
    # the files build scripts read from outside their crate.
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    sources = []
    for i, r in build:
        if i == "COPY" and "--from" not in r:
            sources += r.split()[:-1]
    tracked = subprocess.run(["git", "ls-files", *sources], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    check(tracked, f"the build stage copies tracked files ({sources})")
    excluded = [f for f in tracked if not dockerignore_allows(patterns, f)]
    check(not excluded, f".dockerignore lets in every file the build copies (excluded: {excluded[:5]})")
    for outside in ["target/debug/atoll", ".git/HEAD", "examples/hello/atoll.toml", "crates/atoll/target/x", "crates/x/.atoll/kv.redb"]:
        check(not dockerignore_allows(patterns, outside), f".dockerignore keeps {outside} out of the context")
    for script in ROOT.glob("crates/*/build.rs"):
        for rel in re.findall(r'"\.\./\.\./([^"]+)"', script.read_text()):
            check(any(rel == s or rel.startswith(s.rstrip("/") + "/") for s in sources),
                  f"the build stage copies {rel}, which {script.relative_to(ROOT)} reads")

    # The runtime stage.
    user = next((r for i, r in run if i == "USER"), "0")
    uid = int(user.split(":")[0]) if user.split(":")[0].isdigit() else 0
    check(uid > 0, f"the image runs as a numeric non-root user (USER {user})")
    check(json.loads(next((r for i, r in run if i == "ENTRYPOINT"), "[]")) == ["atoll"], 'ENTRYPOINT ["atoll"]')
    cmd = json.loads(next((r for i, r in run if i == "CMD"), "[]"))
    check(cmd[:1] == ["serve"], f"CMD serves ({cmd})")
    app, given = parse_serve_args(cmd, options)
    check(app == "/app", f"CMD serves the app mounted at /app ({app})")
    exposed = {int(p.split("/")[0]) for i, r in run if i == "EXPOSE" for p in r.split()}
    port = port_of(given.get("--listen", "x:0"))
    check(given.get("--listen", "").startswith("0.0.0.0:"), "CMD listens on every interface, so a published port reaches it")
    check(exposed == {port}, f"EXPOSE {exposed} is CMD's --listen port {port}")
    env = {}
    for i, r in run:
        if i == "ENV":
            env.update(env_of(r))
    unknown = set(env) - env_names
    check(not unknown, f"the code reads every variable the image sets (not: {unknown})")
    check(env.get("ATOLL_DATA_DIR") in " ".join(r for i, r in run if i == "VOLUME"), "the data directory (ATOLL_DATA_DIR) is a VOLUME")
    hc = next((r for i, r in run if i == "HEALTHCHECK"), "")
    hc_cmd = json.loads(hc[hc.index("CMD [") + 4:]) if "CMD [" in hc else []
    hc_text = " ".join(hc_cmd)
    m = re.search(r"/dev/tcp/127\.0\.0\.1/(\d+)", hc_text)
    check(m and int(m.group(1)) == port, f"HEALTHCHECK connects to CMD's port {port}")
    m = re.search(r"GET (\S+) HTTP", hc_text)
    check(m and m.group(1) == "/-/ready" and "/-/ready" in operations, "HEALTHCHECK asks /-/ready, which atoll serves")

    # The app image built on it.
    app_instrs = dockerfile(ROOT / "deploy" / "app.Dockerfile")
    app_cmd = json.loads(next((r for _, i, r in app_instrs if i == "CMD"), "[]"))
    a_app, a_given = parse_serve_args(app_cmd, options)
    copied = [r.split()[-1] for _, i, r in app_instrs if i == "COPY"]
    check(a_app in copied, f"deploy/app.Dockerfile serves the bundle it copies ({a_app}, {copied})")
    check(port_of(a_given.get("--listen", "x:0")) == port, "deploy/app.Dockerfile listens on the exposed port")
    return {"uid": uid, "port": port, "env": env, "healthcheck": hc_cmd}


# --- the Kubernetes manifests -----------------------------------------------

def load_manifests():
    docs = {}
    expected = {
        "deployment.yaml": ("apps/v1", "Deployment"),
        "service.yaml": ("v1", "Service"),
        "configmap.yaml": ("v1", "ConfigMap"),
        "secret.yaml": ("v1", "Secret"),
        "kustomization.yaml": ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
    }
    for name, (api, kind) in expected.items():
        doc = yaml.safe_load((K8S / name).read_text())
        check((doc.get("apiVersion"), doc.get("kind")) == (api, kind), f"{name} is {api} {kind}")
        docs[kind] = doc
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    check(set(docs["Kustomization"].get("resources", [])) == on_disk, f"kustomization.yaml lists every manifest ({sorted(on_disk)})")
    return docs


def svc_ports_exclude(svc, port):
    return all(p.get("targetPort") not in (port, "metrics") for p in svc["spec"]["ports"])


def under(path, mount):
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def check_kubernetes(docs, image, options, defaults, operations):
    dep, svc, cm, secret = docs["Deployment"], docs["Service"], docs["ConfigMap"], docs["Secret"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    app, given = parse_serve_args(c.get("args", []), options)
    check(c.get("args", [""])[0] == "serve", "the container runs `atoll serve` (the image's ENTRYPOINT is atoll)")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    listen = given.get("--listen", defaults.get("--listen", ""))
    check(listen.startswith("0.0.0.0:"), f"the pod listens on every interface ({listen}), so probes and the Service reach it")
    metrics = given.get("--metrics-listen")
    want = {"http": port_of(listen)} | ({"metrics": port_of(metrics)} if metrics else {})
    check(ports == want, f"containerPorts {ports} are the --listen port and the --metrics-listen port ({want})")
    if metrics:
        check(metrics.startswith("0.0.0.0:"), f"the metrics listen on every interface ({metrics}), so Prometheus reaches them")
        annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
        check(annotations.get("prometheus.io/port") == str(port_of(metrics)), "the scrape annotation names the metrics port")
        check(annotations.get("prometheus.io/path") == "/-/metrics", "the scrape annotation names /-/metrics")
        check(svc_ports_exclude(svc, port_of(metrics)), "the Service does not expose the metrics port")
    check(port_of(listen) == image["port"], "the pod listens on the port the image exposes")

    # Probes: served paths, on the container's port.
    probes = {k: c.get(k, {}).get("httpGet", {}) for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    check(probes["readinessProbe"].get("path") == "/-/ready", "readiness probes /-/ready")
    check(probes["livenessProbe"].get("path") == "/-/health", "liveness probes /-/health")
    for kind, probe in probes.items():
        check(probe.get("path") in operations, f"{kind} path {probe.get('path')} is served by atoll ({sorted(operations)})")
        check(probe.get("port") in ports, f"{kind} port {probe.get('port')} is a container port")

    # Stopping: the kubelet's grace period counts from preStop, so it must
    # cover the sleep and atoll's drain.
    grace = int(given.get("--shutdown-grace", defaults["--shutdown-grace"]))
    pre = c.get("lifecycle", {}).get("preStop", {})
    cmd = pre.get("exec", {}).get("command", [])
    sleep = int(cmd[1]) if cmd[:1] == ["sleep"] else int(pre.get("sleep", {}).get("seconds", 0))
    check(sleep > 0, "preStop waits for the endpoints to drop the pod")
    total = pod.get("terminationGracePeriodSeconds", 30)
    check(total >= sleep + grace, f"terminationGracePeriodSeconds {total} >= preStop {sleep} + --shutdown-grace {grace}")

    # Who runs it, and where it may write.
    sc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == image["uid"], f"the pod runs as the image's user {image['uid']}, non-root")
    check(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False, "read-only root, no privilege escalation")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for m in mounts.values():
        check(m["name"] in volumes, f"volume {m['name']} is declared")
    writable = [p for p, m in mounts.items() if not m.get("readOnly") and "emptyDir" in volumes.get(m["name"], {})]
    env = dict(image["env"]) | {e["name"]: e["value"] for e in c.get("env", [])}
    data_dir = given.get("--data-dir", env.get("ATOLL_DATA_DIR"))
    cache_dir = given.get("--cache-dir", env.get("ATOLL_CACHE_DIR"))
    check(data_dir and any(under(data_dir, w) for w in writable), f"the data directory {data_dir} is on a writable emptyDir")
    # atoll chmods the cache directory 0700, which only its owner may do: it
    # must be a directory atoll creates below the mount, not the mount.
    check(cache_dir and any(under(cache_dir, w) and cache_dir != w for w in writable), f"the compile cache {cache_dir} is below a writable emptyDir")
    # A bundle's static files are copied to a temporary directory.
    check("/tmp" in writable, "/tmp is a writable emptyDir")

    # The runtime configuration is the ConfigMap's file.
    rc = given.get("--runtime-config")
    mount = next((p for p in mounts if rc and under(rc, p)), None)
    vol = volumes.get(mounts[mount]["name"], {}) if mount else {}
    check(vol.get("configMap", {}).get("name") == cm["metadata"]["name"], f"--runtime-config {rc} is on the ConfigMap {cm['metadata']['name']}")
    check(mount and rc[len(mount):].lstrip("/") in cm.get("data", {}), f"the ConfigMap has the key {rc} names")

    # Variables: the Secret is the container's environment, named as atoll reads it.
    refs = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
    check(secret["metadata"]["name"] in refs, "the container's environment comes from the Secret")
    keys = list(secret.get("stringData", {})) + list(secret.get("data", {}))
    check(keys, "the Secret has an example variable")
    for k in keys:
        check(re.fullmatch(r"ATOLL_VAR_[A-Z0-9_]+", k) or k == "ATOLL_ADMIN_TOKEN",
              f"Secret key {k} is ATOLL_VAR_<NAME in upper case> or ATOLL_ADMIN_TOKEN")

    # The Service.
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "the Service selects the Deployment's pods")
    check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the Deployment's selector matches its pods")
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in ports or p["targetPort"] in ports.values(), f"the Service's targetPort {p['targetPort']} is a container port")
    return {"args": c["args"], "env": env, "mounts": mounts, "volumes": volumes, "given": given, "app": app,
            "probes": probes, "grace": grace, "secret": secret.get("stringData", {}), "configmap": cm}


# --- the Deployment's arguments, run ----------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def run_deployment(atoll, k8s, image):
    """Serves a bundle as the pod would: the same arguments and environment,
    each mount a temporary directory (the ConfigMap's keys written as files),
    the Secret's variables required by the app so a wrong name fails the load."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        where = {}
        for path, m in k8s["mounts"].items():
            local = tmp / "mounts" / path.strip("/").replace("/", "_")
            local.mkdir(parents=True)
            where[path] = local
            cm = k8s["volumes"][m["name"]].get("configMap")
            if cm:
                for key, text in k8s["configmap"]["data"].items():
                    (local / key).write_text(text)

        def remap(value):
            for path, local in sorted(where.items(), key=lambda p: -len(p[0])):
                if under(value, path):
                    return str(local) + value[len(path):]
            return value

        # The app: one required variable per ATOLL_VAR_ key in the Secret.
        src = tmp / "src"
        src.mkdir()
        names = [k[len("ATOLL_VAR_"):].lower() for k in k8s["secret"] if k.startswith("ATOLL_VAR_")]
        variables = "".join(f"{n} = {{ secret = true, required = true }}\n" for n in names)
        (src / "atoll.toml").write_text(f'[app]\nname = "probe"\nversion = "0.1.0"\n\n[variables]\n{variables}')
        app_dir = tmp / "app"
        app_dir.mkdir()
        bundle_at = app_dir / Path(k8s["app"]).name
        out = subprocess.run([atoll, "bundle", src, "-o", bundle_at], capture_output=True, text=True)
        if not check(out.returncode == 0, f"a probe app bundles: {out.stderr}"):
            return

        port, metrics_port = free_port(), free_port()
        args = []
        for a in k8s["args"]:
            if a == k8s["app"]:
                args.append(str(bundle_at))
            elif a == k8s["given"].get("--listen"):
                args.append(f"127.0.0.1:{port}")
            elif a == k8s["given"].get("--metrics-listen"):
                args.append(f"127.0.0.1:{metrics_port}")
            else:
                args.append(remap(a))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
        env |= {k: remap(v) for k, v in k8s["env"].items()}
        env |= k8s["secret"]
        env["TMPDIR"] = str(where.get("/tmp", tmp))
        env["HOME"] = "/nonexistent"  # as in the image: nothing may rely on it
        log = open(tmp / "serve.log", "w+")
        proc = subprocess.Popen([atoll, *args], env=env, stdout=log, stderr=log)
        try:
            deadline = time.time() + 30
            while get(port, "/-/ready") != 200 and proc.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            for kind, probe in k8s["probes"].items():
                check(get(port, probe["path"]) == 200, f"{kind} {probe['path']} answers 200 from the pod's arguments")
            if k8s["given"].get("--metrics-listen"):
                check(get(metrics_port, "/-/metrics") == 200, "/-/metrics answers on the --metrics-listen port")
                check(get(port, "/-/metrics") == 404, "/-/metrics is not on the app's port")
            hc = [c.replace(f"/{image['port']}", f"/{port}") for c in image["healthcheck"]]
            check(subprocess.run(hc, capture_output=True).returncode == 0, "the HEALTHCHECK command succeeds against a serving atoll")
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=k8s["grace"])
            except subprocess.TimeoutExpired:
                code = "still running"
            check(code == 0, f"SIGTERM stops it within --shutdown-grace, exit 0 (got {code})")
            check(subprocess.run(hc, capture_output=True).returncode != 0, "the HEALTHCHECK command fails once nothing serves")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if failures:
                log.seek(0)
                print("atoll serve's output:\n" + log.read(), file=sys.stderr)

        # And the runtime configuration is one atoll accepts.
        rc = remap(k8s["given"]["--runtime-config"])
        out = subprocess.run([atoll, "check", src, "--runtime-config", rc], capture_output=True, text=True, env=env)
        check(out.returncode == 0, f"atoll check accepts the ConfigMap's runtime configuration: {out.stderr}")


def main():
    atoll = str(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/debug/atoll").resolve())
    if not os.access(atoll, os.X_OK):
        sys.exit(f"deploy/check.py: no atoll binary at {atoll}; build it with `cargo build -p atoll` or pass its path")
    options, defaults = serve_options(atoll)
    check("--listen" in options and "--shutdown-grace" in defaults, "`atoll serve --help` lists its options and defaults")
    operations = served_operation_paths()
    check({"/-/ready", "/-/health"} <= operations, f"handler.rs serves /-/ready and /-/health ({operations})")
    image = check_dockerfile(options, operations, env_vars_read())
    k8s = check_kubernetes(load_manifests(), image, options, defaults, operations)
    run_deployment(atoll, k8s, image)
    if failures:
        sys.exit(f"deploy/check.py: {len(failures)} of {checked} checks failed")
    print(f"deploy/check.py: all {checked} checks hold (Dockerfile, deploy/app.Dockerfile, deploy/kubernetes)")


if __name__ == "__main__":
    main()
