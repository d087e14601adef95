<?php

// Handlers file for bin/errand-worker in the pickup-latency runs: the handler appends
// "<seq> <start time>" to BENCH_PICKUP_LOG as soon as it starts (CLOCK_REALTIME, like the
// enqueuing client's timestamp on the same machine).

declare(strict_types=1);

use Errand\Job;

$log = (string) getenv('BENCH_PICKUP_LOG');

return [
    'noop' => static function (Job $job) use ($log): mixed {
        $started = microtime(true);
        file_put_contents($log, sprintf("%d %.6f\n", $job->payload['seq'], $started), FILE_APPEND);
        return null;
    },
];
