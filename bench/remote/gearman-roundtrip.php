<?php

// Foreground round trip on a Gearman server (gearmand or errand's listener): one idle
// php-gearman worker (gearman-worker.php) waits for `noop`; this client sends COUNT doNormal
// calls one at a time and times each from the call to its result. Prints one JSON line with
// p50/p99 in milliseconds.
//
//   php gearman-roundtrip.php HOST:PORT COUNT SCRATCH_DIR LABEL

declare(strict_types=1);

require __DIR__ . '/common.php';

[, $server, $count, $scratch, $label] = $argv + array_fill(0, 5, null);
if ($label === null) {
    fwrite(STDERR, "usage: php gearman-roundtrip.php HOST:PORT COUNT SCRATCH_DIR LABEL\n");
    exit(2);
}
[$host, $port] = explode(':', $server);
$marks = "{$scratch}/marks-" . bin2hex(random_bytes(4));
mkdir($marks);
$worker = spawn(
    __DIR__ . '/gearman-worker.php',
    [$server],
    ['BENCH_MARKS' => $marks],
    "{$scratch}/gearman-worker-{$label}.log",
);
$client = new GearmanClient();
$client->addServer($host, (int) $port);
// Let the worker register and go to sleep first, so every call finds it idle and waiting.
usleep(500_000);

$latencies = [];
for ($i = 0; $i < (int) $count; $i++) {
    $t = microtime(true);
    $client->doNormal('noop', 'null');
    if ($client->returnCode() !== GEARMAN_SUCCESS) {
        throw new RuntimeException("{$label}: doNormal failed: " . $client->error());
    }
    $latencies[] = (microtime(true) - $t) * 1000;
}
stopProcess($worker);
emit([
    'scenario' => 'roundtrip', 'label' => $label, 'count' => (int) $count,
    'p50_ms' => round(percentile($latencies, 50), 3), 'p99_ms' => round(percentile($latencies, 99), 3),
]);
