<?php

// One Gearman throughput run on gearmand or errand's listener (both answer the admin `status`):
// submits N no-op jobs with doBackground from one php-gearman client, starts K php-gearman
// workers, and times them from the first job's start to the moment the server's admin `status`
// shows no `noop` job left. Prints one JSON line.
//
//   php gearman-throughput.php HOST:PORT JOBS WORKERS SCRATCH_DIR LABEL

declare(strict_types=1);

require __DIR__ . '/common.php';

[, $server, $jobs, $workers, $scratch, $label] = $argv + array_fill(0, 6, null);
if ($label === null) {
    fwrite(STDERR, "usage: php gearman-throughput.php HOST:PORT JOBS WORKERS SCRATCH_DIR LABEL\n");
    exit(2);
}
$jobs = (int) $jobs;
[$host, $port] = explode(':', $server);

$client = new GearmanClient();
$client->addServer($host, (int) $port);
$t = microtime(true);
for ($i = 0; $i < $jobs; $i++) {
    // The same payload as errand's jobs: JSON null (gearmand refuses an empty workload).
    $client->doBackground('noop', 'null');
    if ($client->returnCode() !== GEARMAN_SUCCESS) {
        throw new RuntimeException('doBackground failed: ' . $client->error());
    }
}
$enqueueSeconds = microtime(true) - $t;

// The text admin protocol: `status` lists "function\ttotal\trunning\tworkers", then ".";
// errand's total counts queued, scheduled and running jobs, as gearmand's does.
$admin = fsockopen($host, (int) $port, $errno, $error, 5);
if ($admin === false) {
    throw new RuntimeException("admin connection failed: {$error}");
}
$queued = static function () use ($admin): int {
    fwrite($admin, "status\n");
    $total = 0;
    while (($line = fgets($admin)) !== false && rtrim($line) !== '.') {
        $fields = explode("\t", rtrim($line));
        if ($fields[0] === 'noop') {
            $total = (int) $fields[1];
        }
    }
    return $total;
};
if ($queued() < $jobs) {
    throw new RuntimeException("{$label}: the server holds fewer than {$jobs} noop jobs before the workers start");
}

$marks = "{$scratch}/marks-" . bin2hex(random_bytes(4));
mkdir($marks);
$children = [];
for ($i = 0; $i < (int) $workers; $i++) {
    $children[] = spawn(
        __DIR__ . '/gearman-worker.php',
        [$server],
        ['BENCH_MARKS' => $marks],
        "{$scratch}/gearman-worker-{$label}.log",
    );
}
$deadline = microtime(true) + 600;
while ($queued() > 0) {
    if (microtime(true) > $deadline) {
        throw new RuntimeException("{$label}: jobs still queued after 600 s");
    }
    usleep(2_000);
}
$end = microtime(true);
array_map('stopProcess', $children);
$seconds = $end - firstStart($marks);
emit([
    'scenario' => 'throughput', 'label' => $label, 'workers' => (int) $workers, 'batch' => 1,
    'jobs' => $jobs, 'seconds' => round($seconds, 4), 'jobs_per_s' => round($jobs / $seconds, 1),
    'enqueue_jobs_per_s' => round($jobs / $enqueueSeconds, 1),
]);
