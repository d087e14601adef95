#!/usr/bin/env python3
"""Python side of bench/peers.sh: errand's HTTP client, a minimal beanstalk client and worker,
and the summary table. Standard library only; each measuring command prints one JSON line in the
format of bench/remote/*.php (enqueue_jobs_per_s, jobs_per_s, p50_ms), so one summary reads all.

  peers.py errand-enqueue URL JOBS            one job at a time over one keep-alive connection
  peers.py errand-health URL N               GET /healthz N times the same way: the HTTP round
                                              trip with no write, the ceiling of errand-enqueue
  peers.py errand-enqueue-lean URL JOBS       the same with a lean client (LeanHttp): one socket,
                                              the request's bytes built once
  peers.py errand-health-lean URL N          GET /healthz the same way
  peers.py errand-fill URL JOBS               the same jobs in batches of 1,000 (not timed)
  peers.py errand-drain URL JOBS MARKS [LABEL [GO]]
                                              waits until JOBS noop jobs completed; the time
                                              since the first handler start (MARKS/first-*);
                                              with GO, creates that file once it is polling
                                              (the pool's processes wait for it: BENCH_GO)
  peers.py errand-pickup URL COUNT LOG        enqueue one job, wait for its line in LOG, repeat
  peers.py beanstalk-throughput HOST:PORT JOBS WORKERS SCRATCH
  peers.py beanstalk-pickup HOST:PORT COUNT SCRATCH
  peers.py beanstalk-enqueue HOST:PORT JOBS  one put at a time (the enqueue of beanstalk-throughput)
  peers.py beanstalk-worker HOST:PORT         reserve/delete until killed (BENCH_MARKS,
                                              BENCH_PICKUP_LOG as for the PHP workers)
  peers.py summary RESULTS.jsonl COLUMN...    the markdown table (medians, ratios vs errand)
  peers.py enqueue-summary RESULTS.jsonl     bench/enqueue.sh's table

Clocks: time.time() here and microtime(true) in PHP are both CLOCK_REALTIME on one machine.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

DEADLINE_S = 600


def emit(row):
    print(json.dumps(row), flush=True)


def percentile(values, p):
    values = sorted(values)
    rank = max(0, min(len(values) - 1, -(-p * len(values) // 100) - 1))
    return values[int(rank)]


def median(values):
    values = sorted(values)
    n = len(values)
    if n == 0:
        return None
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def first_start(marks):
    starts = [float(open(os.path.join(marks, f)).read()) for f in os.listdir(marks) if f.startswith("first-")]
    if not starts:
        raise SystemExit(f"peers.py: no worker started a job (no marks in {marks})")
    return min(starts)


def wait_lines(path, n, what):
    """Until PATH holds N lines (a handler's start marks); polls every 0.2 ms, as the PHP one."""
    deadline = time.time() + 10
    while True:
        with open(path, "rb") as f:
            if f.read().count(b"\n") >= n:
                return
        if time.time() > deadline:
            raise SystemExit(f"peers.py: {what}: job {n} not started within 10 s")
        time.sleep(0.0002)


def pickup_row(label, log, sent, acked, count):
    latencies, after_ack = [], []
    with open(log) as f:
        for line in f:
            seq, started = line.split()
            latencies.append((float(started) - sent[int(seq)]) * 1000)
            after_ack.append((float(started) - acked[int(seq)]) * 1000)
    if len(latencies) != count:
        raise SystemExit(f"peers.py: {label}: {len(latencies)} handler starts for {count} jobs")
    enqueue = [(acked[s] - sent[s]) * 1000 for s in sent]
    return {
        "scenario": "pickup", "label": label, "count": count,
        "p50_ms": round(percentile(latencies, 50), 3), "p99_ms": round(percentile(latencies, 99), 3),
        "enqueue_p50_ms": round(percentile(enqueue, 50), 3),
        "after_ack_p50_ms": round(percentile(after_ack, 50), 3),
    }


# ---------------------------------------------------------------------------------------------
# errand: POST /v1/jobs over one keep-alive HTTP/1.1 connection (http.client sends headers and
# a bytes body in one write, so Nagle's algorithm does not delay the body).


class Errand:
    def __init__(self, url):
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        text = response.read()
        if response.status >= 300:
            raise SystemExit(f"peers.py: {method} {path}: {response.status} {text[:200]!r}")
        return json.loads(text)

    def enqueue(self, payload):
        return self.request("POST", "/v1/jobs", {"kind": "noop", "payload": payload})

    def completed(self):
        return int(self.request("GET", "/v1/stats").get("kinds", {}).get("noop", {}).get("completed", 0))


def connect(host, port):
    """One TCP connection with Nagle off (each request is one write), and a buffered reader on it."""
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, sock.makefile("rb")


class LeanHttp:
    """POST /v1/jobs as a lean client would send it: one keep-alive socket, the request's bytes
    built once, the answer's status line, headers (for its length) and JSON body read back. The
    weight of the minimal beanstalk client below, against http.client's header parsing."""

    def __init__(self, url, path, body):
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.sock, self.reader = connect(host, port)
        if body is None:
            self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        else:
            data = json.dumps(body).encode()
            self.request = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(data)}\r\n\r\n").encode() + data

    def call(self):
        self.sock.sendall(self.request)
        status = self.reader.readline()
        length = None
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if length is None or not status.startswith(b"HTTP/1.1 2"):
            raise SystemExit(f"peers.py: lean client: {status!r} without a length or not a success")
        return json.loads(self.reader.read(length))


def lean_rate(url, path, body, calls):
    """Calls per second of LeanHttp sending the same request CALLS times."""
    client = LeanHttp(url, path, body)
    started = time.time()
    for _ in range(calls):
        client.call()
    return round(calls / (time.time() - started), 1)


def errand_enqueue_lean(url, jobs):
    rate = lean_rate(url, "/v1/jobs", {"kind": "noop", "payload": None}, jobs)
    emit({"scenario": "enqueue", "label": "errand-lean", "jobs": jobs, "enqueue_jobs_per_s": rate})


def errand_health_lean(url, requests):
    rate = lean_rate(url, "/healthz", None, requests)
    emit({"scenario": "health", "label": "errand-lean", "requests": requests, "health_per_s": rate})


def errand_enqueue(url, jobs):
    client = Errand(url)
    started = time.time()
    for _ in range(jobs):
        client.enqueue(None)
    seconds = time.time() - started
    emit({"scenario": "enqueue", "label": "errand", "jobs": jobs, "enqueue_jobs_per_s": round(jobs / seconds, 1)})


def errand_health(url, requests):
    client = Errand(url)
    started = time.time()
    for _ in range(requests):
        client.request("GET", "/healthz")
    seconds = time.time() - started
    emit({"scenario": "health", "label": "errand", "requests": requests,
          "health_per_s": round(requests / seconds, 1)})


def errand_fill(url, jobs):
    client = Errand(url)
    for left in range(jobs, 0, -1000):
        client.request("POST", "/v1/jobs/batch", {"jobs": [{"kind": "noop", "payload": None}] * min(1000, left)})


def errand_drain(url, jobs, marks, label, go=None):
    client = Errand(url)
    deadline = time.time() + DEADLINE_S
    while client.completed() < jobs:
        if go is not None and not os.path.exists(go):
            # Polling now: the processes may start, so the end is seen as soon as it comes
            # (else a fast drain could end before this process even started polling).
            open(go, "w").close()
        if time.time() > deadline:
            raise SystemExit(f"peers.py: {label}: jobs still unfinished after {DEADLINE_S} s")
        time.sleep(0.002)
    seconds = time.time() - first_start(marks)
    emit({"scenario": "throughput", "label": label, "workers": 2, "jobs": jobs,
          "seconds": round(seconds, 4), "jobs_per_s": round(jobs / seconds, 1)})


def errand_pickup(url, count, log):
    client = Errand(url)
    time.sleep(0.5)  # the pool's processes greet errand and wait for jobs
    sent, acked = {}, {}
    for seq in range(1, count + 1):
        sent[seq] = time.time()
        client.enqueue({"seq": seq})
        acked[seq] = time.time()
        wait_lines(log, seq, "errand pickup")
        time.sleep(0.005)
    emit(pickup_row("errand", log, sent, acked, count))


# ---------------------------------------------------------------------------------------------
# beanstalkd: its text protocol (doc/protocol.txt), the three commands a queue needs.


class Beanstalk:
    def __init__(self, address):
        host, port = address.split(":")
        self.sock, self.reader = connect(host, port)

    def call(self, line, body=None):
        data = line.encode() + b"\r\n"
        if body is not None:
            data += body + b"\r\n"
        self.sock.sendall(data)
        return self.reader.readline().rstrip(b"\r\n").decode()

    def put(self, body, ttr=60):
        answer = self.call(f"put 0 0 {ttr} {len(body)}", body)
        if not answer.startswith("INSERTED "):
            raise SystemExit(f"peers.py: put: {answer}")
        return int(answer.split()[1])

    def reserve(self):
        answer = self.call("reserve")
        if not answer.startswith("RESERVED "):
            raise SystemExit(f"peers.py: reserve: {answer}")
        _, job_id, size = answer.split()
        body = self.reader.read(int(size) + 2)[:-2]
        return int(job_id), body

    def delete(self, job_id):
        answer = self.call(f"delete {job_id}")
        if answer != "DELETED":
            raise SystemExit(f"peers.py: delete: {answer}")

    def stats_tube(self, tube="default"):
        answer = self.call(f"stats-tube {tube}")
        if not answer.startswith("OK "):
            raise SystemExit(f"peers.py: stats-tube: {answer}")
        text = self.reader.read(int(answer.split()[1]) + 2).decode()
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def beanstalk_worker(address):
    marks, log = os.environ.get("BENCH_MARKS"), os.environ.get("BENCH_PICKUP_LOG")
    client = Beanstalk(address)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    first = True
    while True:
        job_id, body = client.reserve()
        now = time.time()
        if log:
            with open(log, "a") as f:
                f.write(f"{body.decode()} {now:.6f}\n")
        if first and marks:
            first = False
            with open(os.path.join(marks, f"first-{os.getpid()}"), "w") as f:
                f.write(f"{now:.6f}")
        client.delete(job_id)


def spawn_worker(address, env, log):
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, __file__, "beanstalk-worker", address],
                                env={**os.environ, **env}, stdout=out, stderr=out, stdin=subprocess.DEVNULL)


def stop(children):
    for child in children:
        child.terminate()
    for child in children:
        child.wait(5)


def beanstalk_throughput(address, jobs, workers, scratch, label):
    client = Beanstalk(address)
    started = time.time()
    for _ in range(jobs):
        client.put(b"null")
    enqueue_seconds = time.time() - started
    marks = os.path.join(scratch, f"marks-{label}-{os.getpid()}")
    os.mkdir(marks)
    children = [spawn_worker(address, {"BENCH_MARKS": marks}, os.path.join(scratch, f"worker-{label}.log"))
                for _ in range(workers)]
    deadline = time.time() + DEADLINE_S
    while True:
        stats = client.stats_tube()
        if int(stats["current-jobs-ready"]) + int(stats["current-jobs-reserved"]) == 0:
            break
        if time.time() > deadline or any(c.poll() is not None for c in children):
            stop(children)
            raise SystemExit(f"peers.py: {label}: jobs left or a worker exited; see {scratch}/worker-{label}.log")
        time.sleep(0.002)
    end = time.time()
    stop(children)
    seconds = end - first_start(marks)
    emit({"scenario": "throughput", "label": label, "workers": workers, "jobs": jobs,
          "seconds": round(seconds, 4), "jobs_per_s": round(jobs / seconds, 1),
          "enqueue_jobs_per_s": round(jobs / enqueue_seconds, 1)})


def beanstalk_enqueue(address, jobs):
    client = Beanstalk(address)
    started = time.time()
    for _ in range(jobs):
        client.put(b"null")
    seconds = time.time() - started
    emit({"scenario": "enqueue", "label": "beanstalkd", "jobs": jobs,
          "enqueue_jobs_per_s": round(jobs / seconds, 1)})


def beanstalk_pickup(address, count, scratch, label):
    log = os.path.join(scratch, f"pickup-{label}-{os.getpid()}")
    open(log, "w").close()
    worker = spawn_worker(address, {"BENCH_PICKUP_LOG": log}, os.path.join(scratch, f"worker-{label}.log"))
    client = Beanstalk(address)
    time.sleep(0.5)  # the worker connects and waits in `reserve`
    sent, acked = {}, {}
    for seq in range(1, count + 1):
        sent[seq] = time.time()
        client.put(str(seq).encode())
        acked[seq] = time.time()
        wait_lines(log, seq, label)
        time.sleep(0.005)
    stop([worker])
    emit(pickup_row(label, log, sent, acked, count))


# ---------------------------------------------------------------------------------------------
# The table: rows are the three figures, columns the servers; each cell the median over rounds
# and, for a peer, the median over rounds of peer ÷ errand within the round.

ROWS = [
    ("one client enqueuing one job at a time (jobs/s)", "enqueue", ("enqueue_jobs_per_s", "enqueue_batch_jobs_per_s")),
    ("the same client, GET /healthz: no write (requests/s)", "health", ("health_per_s",)),
    ("pickup p50 from the enqueue call (ms)", "pickup", ("p50_ms", "pickup_p50_ms")),
    ("no-op jobs processed by 2 worker processes (jobs/s)", "drain", ("jobs_per_s", "e2e_jobs_per_s")),
    ("the same with 2 Python worker processes (jobs/s)", "drain_py", ("jobs_per_s",)),
]


def summary(path, columns):
    # {column: {metric: {round: value}}}
    values = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            cell = values.setdefault(rec["column"], {})
            for _, metric, keys in ROWS:
                if metric not in rec["metrics"]:
                    continue
                for key in keys:
                    if key in rec["data"]:
                        cell.setdefault(metric, {})[rec["round"]] = float(rec["data"][key])
    present = [c for c in columns if c in values]
    base = present[0]

    def fmt(x, metric):
        return f"{x:,.2f}" if metric == "pickup" else f"{x:,.0f}"

    print("| | " + " | ".join(present) + " |")
    print("| --- |" + " --- |" * len(present))
    for title, metric, _ in ROWS:
        cells = []
        for col in present:
            runs = values[col].get(metric, {})
            if not runs:
                cells.append("—")
                continue
            text = fmt(median(list(runs.values())), metric)
            if col != base:
                ref = values[base].get(metric, {})
                ratios = [v / ref[r] for r, v in runs.items() if ref.get(r)]
                if ratios:
                    text += f" ({median(ratios):.2f}×)"
            cells.append(text)
        print(f"| {title} | " + " | ".join(cells) + " |")
    print()
    print(f"In parentheses: the peer ÷ {base} within each round, median over rounds. Each run:")
    for col in present:
        parts = []
        for _, metric, _ in ROWS:
            runs = values[col].get(metric, {})
            if runs:
                parts.append(f"{metric} " + " / ".join(fmt(runs[r], metric) for r in sorted(runs)))
        print(f"- {col}: " + "; ".join(parts))


# bench/enqueue.sh's table: each errand client's rate beside the beanstalkd client of its weight.
ENQUEUE_PAIRS = [
    ("python, lean", "python, lean"),
    ("python, http.client", "python, lean"),
    ("php", "php"),
    ("healthz, lean", "python, lean"),
]


def enqueue_summary(path):
    rates = {}  # {(server, client): {round: rate}}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            rates.setdefault((rec["server"], rec["client"]), {})[rec["round"]] = rec["rate"]
    servers = [s for s in ("errand", "errand, normal", "baseline") if any(k[0] == s for k in rates)]
    print("| server | errand client | errand (jobs/s) | beanstalkd -f 0, same-weight client (jobs/s) "
          "| errand ÷ beanstalkd, median per round | per round |")
    print("| --- | --- | --- | --- | --- | --- |")
    for server in servers:
        for ours, theirs in ENQUEUE_PAIRS:
            mine, peer = rates.get((server, ours), {}), rates.get(("beanstalkd", theirs), {})
            rounds = sorted(r for r in mine if r in peer)
            if not rounds:
                continue
            ratios = [mine[r] / peer[r] for r in rounds]
            print(f"| {server} | {ours} | {median(list(mine.values())):,.0f} "
                  f"| {median(list(peer.values())):,.0f} ({theirs}) | {median(ratios):.2f}× | "
                  + " / ".join(f"{x:.2f}" for x in ratios) + " |")
    if "baseline" in servers:
        print()
        print("errand ÷ baseline, median per round (rounds ahead):")
        for ours, _ in ENQUEUE_PAIRS:
            new, old = rates.get(("errand", ours), {}), rates.get(("baseline", ours), {})
            rounds = sorted(r for r in new if r in old)
            if rounds:
                ratios = [new[r] / old[r] for r in rounds]
                ahead = sum(x > 1 for x in ratios)
                print(f"- {ours}: {median(ratios):.3f}× ({ahead} of {len(ratios)})")


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "errand-enqueue":
        errand_enqueue(args[0], int(args[1]))
    elif cmd == "errand-health":
        errand_health(args[0], int(args[1]))
    elif cmd == "errand-enqueue-lean":
        errand_enqueue_lean(args[0], int(args[1]))
    elif cmd == "errand-health-lean":
        errand_health_lean(args[0], int(args[1]))
    elif cmd == "beanstalk-enqueue":
        beanstalk_enqueue(args[0], int(args[1]))
    elif cmd == "errand-fill":
        errand_fill(args[0], int(args[1]))
    elif cmd == "errand-drain":
        errand_drain(args[0], int(args[1]), args[2], args[3] if len(args) > 3 else "errand",
                     args[4] if len(args) > 4 else None)
    elif cmd == "errand-pickup":
        errand_pickup(args[0], int(args[1]), args[2])
    elif cmd == "beanstalk-throughput":
        beanstalk_throughput(args[0], int(args[1]), int(args[2]), args[3], "beanstalkd")
    elif cmd == "beanstalk-pickup":
        beanstalk_pickup(args[0], int(args[1]), args[2], "beanstalkd")
    elif cmd == "beanstalk-worker":
        beanstalk_worker(args[0])
    elif cmd == "summary":
        summary(args[0], args[1:])
    elif cmd == "enqueue-summary":
        enqueue_summary(args[0])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
