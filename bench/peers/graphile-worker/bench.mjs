// graphile-worker peer benchmark: the figures errand's PostgreSQL engine is
// compared with, measured on the same PostgreSQL server in the same run.
//
//   node bench.mjs [DATABASE_URL] [--jobs N] [--concurrency C] [--batch-size B] [--no-pickup]
//
// The URL comes from argv or $DATABASE_URL. It installs graphile-worker's
// schema, enqueues N no-op jobs with addJobs, runs them with a no-op task in
// one worker process, then (unless --no-pickup) measures pickup latency on
// the idle worker, and prints ONE JSON line on stdout; logs go to stderr.
// The database must hold no graphile-worker jobs yet (use a fresh one).
//
// Worker configuration follows graphile-worker's own performance page
// (https://worker.graphile.org/docs/performance, "Quick stats" and
// "Batching"), the configuration behind its published throughput:
//   concurrentJobs: 24, maxPoolSize: 25 (concurrentJobs + 1),
//   localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0.
// Its perfTest also sets NO_LOG_SUCCESS=1 so that no log line is formatted
// per completed job; so do we.

import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

// Read by graphile-worker when its modules load, hence the dynamic import below.
process.env.NO_LOG_SUCCESS = "1";
const { Logger, makeWorkerUtils, run, runMigrations } = await import("graphile-worker");
// The package's exports hide its package.json, so read the installed copy.
const { version } = JSON.parse(
  readFileSync(new URL("./node_modules/graphile-worker/package.json", import.meta.url), "utf8"),
);

const PICKUP_SAMPLES = 200;
const PICKUP_GAP_MS = 5;
// Generous: a loaded 2-core box can be slow, but a stuck run must end.
const DEADLINE_MS = 10 * 60 * 1000;

/** Bad command line: reported without a stack trace. */
class UsageError extends Error {}

/** Command line and environment, checked before anything touches the database. */
function parseConfig() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        jobs: { type: "string", default: "100000" },
        concurrency: { type: "string", default: "24" },
        "batch-size": { type: "string" },
        "no-pickup": { type: "boolean", default: false },
      },
    });
  } catch (error) {
    throw new UsageError(error.message);
  }
  const { values, positionals } = parsed;
  const url = positionals[0] ?? process.env.DATABASE_URL;
  if (!url || !/^postgres(ql)?:\/\//.test(url) || positionals.length > 1) {
    throw new UsageError("usage: node bench.mjs [postgres://URL] [--jobs N] [--concurrency C] [--batch-size B] [--no-pickup] (or set DATABASE_URL)");
  }
  const jobs = positiveInt("--jobs", values.jobs);
  const concurrency = positiveInt("--concurrency", values.concurrency);
  // One addJobs call for everything by default, as in the "jobs queued per
  // second from single add_jobs batch call" figure of the performance page.
  const batchSize = values["batch-size"] === undefined ? jobs : positiveInt("--batch-size", values["batch-size"]);
  return { url, jobs, concurrency, batchSize, pickup: !values["no-pickup"] };
}

function positiveInt(name, text) {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${name} must be a positive integer, got '${text}'`);
  }
  return n;
}

/** The worker preset from graphile-worker's performance documentation. */
function workerPreset(url, concurrency) {
  return {
    connectionString: url,
    concurrentJobs: concurrency,
    maxPoolSize: concurrency + 1,
    localQueue: { size: 500 },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
    logger: quietLogger,
  };
}

/** Warnings and errors to stderr; info and debug dropped so stdout stays one JSON line. */
const quietLogger = new Logger((scope) => (level, message) => {
  if (level === "error" || level === "warning") {
    console.error(`[graphile-worker ${scope.label ?? ""}] ${level}: ${message}`);
  }
});

/** A promise with its resolve function, for "all jobs ran" signals. */
function signal() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

async function withDeadline(promise, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), DEADLINE_MS);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function countJobs(utils) {
  return utils.withPgClient(async (client) => {
    const { rows } = await client.query("select count(*)::int as n from graphile_worker._private_jobs");
    return rows[0].n;
  });
}

/** Polls until graphile-worker has deleted every job row, i.e. every completion is committed. */
async function untilQueueEmpty(utils) {
  const deadline = performance.now() + DEADLINE_MS;
  while ((await countJobs(utils)) > 0) {
    if (performance.now() > deadline) {
      throw new Error("timed out waiting for the completions to be committed");
    }
    await sleep(1);
  }
}

async function enqueue(utils, jobs, batchSize) {
  const started = performance.now();
  for (let done = 0; done < jobs; done += batchSize) {
    const n = Math.min(batchSize, jobs - done);
    const specs = Array.from({ length: n }, () => ({ identifier: "noop", payload: {} }));
    await utils.addJobs(specs);
  }
  return jobs / ((performance.now() - started) / 1000);
}

/** Idle worker; jobs added one at a time; ms from addJob resolving to the task starting. */
async function measurePickup(utils, pickupStarts) {
  const added = [];
  for (let i = 0; i < PICKUP_SAMPLES; i++) {
    await utils.addJob("pickup", { i });
    added[i] = performance.now();
    await sleep(PICKUP_GAP_MS);
  }
  await withDeadline(pickupStarts.all.promise, "the pickup jobs");
  // A task can start before its addJob's reply is read: that is zero latency.
  const latencies = added.map((t, i) => Math.max(0, pickupStarts.at[i] - t)).sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)];
  return { pickup_p50_ms: round(pct(50), 2), pickup_p99_ms: round(pct(99), 2) };
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

async function main() {
  const cfg = parseConfig();
  await runMigrations({ connectionString: cfg.url, logger: quietLogger });
  const utils = await makeWorkerUtils({ connectionString: cfg.url, logger: quietLogger });
  let runner;
  try {
    const leftover = await countJobs(utils);
    if (leftover > 0) {
      throw new Error(`the database already holds ${leftover} graphile-worker jobs; use a fresh database`);
    }
    const enqueuePerS = await enqueue(utils, cfg.jobs, cfg.batchSize);

    let ran = 0;
    let firstStart;
    const allRan = signal();
    const pickupStarts = { at: [], count: 0, all: signal() };
    const taskList = {
      noop: async () => {
        firstStart ??= performance.now();
        if (++ran === cfg.jobs) allRan.resolve();
      },
      pickup: async ({ i }) => {
        pickupStarts.at[i] = performance.now();
        if (++pickupStarts.count === PICKUP_SAMPLES) pickupStarts.all.resolve();
      },
    };
    const preset = workerPreset(cfg.url, cfg.concurrency);
    runner = await run({ preset: { worker: preset }, taskList, events: new EventEmitter(), noHandleSignals: true });

    await withDeadline(allRan.promise, "the no-op jobs to run");
    await untilQueueEmpty(utils);
    const e2eSeconds = (performance.now() - firstStart) / 1000;
    if (ran !== cfg.jobs) {
      throw new Error(`expected ${cfg.jobs} task runs, saw ${ran}`);
    }

    const pickup = cfg.pickup ? await measurePickup(utils, pickupStarts) : {};
    const { logger: _, connectionString: __, ...options } = preset;
    console.log(
      JSON.stringify({
        peer: "graphile-worker",
        version,
        jobs: cfg.jobs,
        enqueue_batch_jobs_per_s: Math.round(enqueuePerS),
        e2e_jobs_per_s: Math.round(cfg.jobs / e2eSeconds),
        ...pickup,
        concurrency: cfg.concurrency,
        options: { ...options, addJobs_batch_size: cfg.batchSize, processes: 1, node: process.version },
      }),
    );
  } finally {
    await runner?.stop();
    await utils.release();
  }
}

main().catch((error) => {
  console.error(`bench.mjs: ${error instanceof UsageError ? error.message : (error?.stack ?? error)}`);
  process.exit(1);
});
