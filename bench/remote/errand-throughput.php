<?php

// One errand throughput run: batch-enqueues N no-op jobs into a running `errand serve`, starts K
// PHP workers (clients/php/bin/errand-worker --batch B), and times them from the first handler
// start to the moment errand's stored counts show every job completed. Prints one JSON line.
//
//   php errand-throughput.php URL JOBS WORKERS BATCH SCRATCH_DIR LABEL

declare(strict_types=1);

require __DIR__ . '/autoload.php';
require __DIR__ . '/common.php';

[, $url, $jobs, $workers, $batch, $scratch, $label] = $argv + array_fill(0, 7, null);
if ($label === null) {
    fwrite(STDERR, "usage: php errand-throughput.php URL JOBS WORKERS BATCH SCRATCH_DIR LABEL\n");
    exit(2);
}
$jobs = (int) $jobs;
$client = new Errand\Client($url);
$http = new Errand\Http($url);
$completed = static function () use ($http): int {
    [, $stats] = $http->request('GET', '/v1/stats');
    return (int) ($stats['kinds']['noop']['completed'] ?? 0);
};
$before = $completed();

// Enqueue everything first (1,000 jobs per request, the API's batch route), so the timed part
// is the workers' alone.
$t = microtime(true);
for ($left = $jobs; $left > 0; $left -= 1000) {
    $client->enqueueMany(array_fill(0, min(1000, $left), ['kind' => 'noop', 'payload' => null]));
}
$enqueueSeconds = microtime(true) - $t;

$marks = "{$scratch}/marks-" . bin2hex(random_bytes(4));
mkdir($marks);
$worker = dirname(__DIR__, 2) . '/clients/php/bin/errand-worker';
$children = [];
for ($i = 0; $i < (int) $workers; $i++) {
    $children[] = spawn(
        $worker,
        ['--url', $url, '--batch', (string) $batch, '--wait', '30', __DIR__ . '/noop-handlers.php'],
        ['BENCH_MARKS' => $marks],
        "{$scratch}/worker-{$label}.log",
    );
}
// Every 2 ms: the end is known to within that, against runs of a quarter second or more.
$deadline = microtime(true) + 600;
while ($completed() - $before < $jobs) {
    if (microtime(true) > $deadline) {
        throw new RuntimeException("{$label}: jobs still unfinished after 600 s");
    }
    foreach ($children as $child) {
        if (!proc_get_status($child)['running']) {
            throw new RuntimeException("{$label}: a worker exited early, see {$scratch}/worker-{$label}.log");
        }
    }
    usleep(2_000);
}
$end = microtime(true);
array_map('stopProcess', $children);
$seconds = $end - firstStart($marks);
emit([
    'scenario' => 'throughput', 'label' => $label, 'workers' => (int) $workers, 'batch' => (int) $batch,
    'jobs' => $jobs, 'seconds' => round($seconds, 4), 'jobs_per_s' => round($jobs / $seconds, 1),
    'enqueue_jobs_per_s' => round($jobs / $enqueueSeconds, 1),
]);
