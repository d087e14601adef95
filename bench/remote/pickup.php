<?php

// Pickup latency: one idle PHP worker (bin/errand-worker, one job per claim, long poll) on
// WORKER_URL; this client enqueues one job at a time on ENQUEUE_URL (the same node, or another
// node on the same PostgreSQL database) over one keep-alive connection. Latency = the handler's
// start (written by pickup-handlers.php) minus the time just before the enqueue call; both are
// CLOCK_REALTIME on this machine. Prints one JSON line with p50/p99.
//
//   php pickup.php WORKER_URL ENQUEUE_URL COUNT SCRATCH_DIR LABEL

declare(strict_types=1);

require __DIR__ . '/autoload.php';
require __DIR__ . '/common.php';

[, $workerUrl, $enqueueUrl, $count, $scratch, $label] = $argv + array_fill(0, 6, null);
if ($label === null) {
    fwrite(STDERR, "usage: php pickup.php WORKER_URL ENQUEUE_URL COUNT SCRATCH_DIR LABEL\n");
    exit(2);
}
$count = (int) $count;
$log = "{$scratch}/pickup-{$label}-" . bin2hex(random_bytes(4));
touch($log);
$workerLog = "{$scratch}/worker-{$label}.log";
$worker = spawn(
    dirname(__DIR__, 2) . '/clients/php/bin/errand-worker',
    ['--url', $workerUrl, '--wait', '30', __DIR__ . '/pickup-handlers.php'],
    ['BENCH_PICKUP_LOG' => $log],
    $workerLog,
);
$client = new Errand\Client($enqueueUrl);
// Let the worker start and settle into its long poll before the first job.
$deadline = microtime(true) + 10;
while (!str_contains((string) @file_get_contents($workerLog), 'started')) {
    if (microtime(true) > $deadline) {
        throw new RuntimeException("the pickup worker did not start; see {$workerLog}");
    }
    usleep(10_000);
}
usleep(500_000);

$sent = $acked = [];
for ($seq = 1; $seq <= $count; $seq++) {
    $sent[$seq] = microtime(true);
    $job = $client->enqueue('noop', ['seq' => $seq]);
    $acked[$seq] = microtime(true);
    $done = $client->waitJob($job['id'], 10);
    if ($done['state'] !== 'completed') {
        throw new RuntimeException("job {$job['id']} not completed within 10 s: {$done['state']}");
    }
    // The worker is back in its long poll (the next claim follows its finish at once).
    usleep(5_000);
}
stopProcess($worker);

// Also split at the enqueue's acknowledgement, to tell the enqueue's commit from the wake-up.
$latencies = $afterAck = $enqueue = [];
foreach (file($log, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
    [$seq, $started] = explode(' ', $line);
    $latencies[] = ((float) $started - $sent[(int) $seq]) * 1000;
    $afterAck[] = ((float) $started - $acked[(int) $seq]) * 1000;
    $enqueue[] = ($acked[(int) $seq] - $sent[(int) $seq]) * 1000;
}
if (count($latencies) !== $count) {
    throw new RuntimeException("{$label}: " . count($latencies) . " handler starts for {$count} jobs");
}
emit([
    'scenario' => 'pickup', 'label' => $label, 'count' => $count,
    'p50_ms' => round(percentile($latencies, 50), 3), 'p99_ms' => round(percentile($latencies, 99), 3),
    'enqueue_p50_ms' => round(percentile($enqueue, 50), 3),
    'after_ack_p50_ms' => round(percentile($afterAck, 50), 3),
]);
