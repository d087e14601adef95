<?php

// Pickup latency of the gearmand baseline, for comparison with pickup.php: one idle php-gearman
// worker (gearman-worker.php, which appends "<seq> <start time>" to BENCH_PICKUP_LOG when set);
// this client submits one background job at a time and waits for the worker's line before the
// next. Latency = the handler's start minus the time just before doBackground (CLOCK_REALTIME,
// same machine). Prints one JSON line with p50/p99.
//
//   php gearman-pickup.php HOST:PORT COUNT SCRATCH_DIR LABEL

declare(strict_types=1);

require __DIR__ . '/common.php';

[, $server, $count, $scratch, $label] = $argv + array_fill(0, 5, null);
if ($label === null) {
    fwrite(STDERR, "usage: php gearman-pickup.php HOST:PORT COUNT SCRATCH_DIR LABEL\n");
    exit(2);
}
$count = (int) $count;
[$host, $port] = explode(':', $server);
$log = "{$scratch}/pickup-{$label}-" . bin2hex(random_bytes(4));
touch($log);
$marks = "{$scratch}/marks-" . bin2hex(random_bytes(4));
mkdir($marks);
$worker = spawn(
    __DIR__ . '/gearman-worker.php',
    [$server],
    ['BENCH_MARKS' => $marks, 'BENCH_PICKUP_LOG' => $log],
    "{$scratch}/gearman-worker-{$label}.log",
);
$client = new GearmanClient();
$client->addServer($host, (int) $port);
// The worker registers and goes to sleep in gearmand (PRE_SLEEP) before the first job.
usleep(500_000);

$sent = [];
for ($seq = 1; $seq <= $count; $seq++) {
    $sent[$seq] = microtime(true);
    $client->doBackground('noop', (string) $seq);
    if ($client->returnCode() !== GEARMAN_SUCCESS) {
        throw new RuntimeException('doBackground failed: ' . $client->error());
    }
    // Background jobs have no completion to wait for: wait for the handler's line instead.
    $deadline = microtime(true) + 10;
    while (substr_count((string) file_get_contents($log), "\n") < $seq) {
        if (microtime(true) > $deadline) {
            throw new RuntimeException("{$label}: job {$seq} not started within 10 s");
        }
        usleep(200);
    }
    usleep(5_000);
}
stopProcess($worker);

$latencies = [];
foreach (file($log, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) as $line) {
    [$seq, $started] = explode(' ', $line);
    $latencies[] = ((float) $started - $sent[(int) $seq]) * 1000;
}
emit([
    'scenario' => 'pickup', 'label' => $label, 'count' => $count,
    'p50_ms' => round(percentile($latencies, 50), 3), 'p99_ms' => round(percentile($latencies, 99), 3),
]);
