<?php

// A no-op errand pool worker (docs/pool-protocol.md) for bench/peers.sh: answers every job at
// once. Like bench/remote/gearman-worker.php it writes its first job's start time to
// BENCH_MARKS/first-<pid> and, with BENCH_PICKUP_LOG set, appends "<seq> <start time>" for every
// job whose payload carries a seq.

declare(strict_types=1);

$marks = getenv('BENCH_MARKS') ?: null;
$pickupLog = getenv('BENCH_PICKUP_LOG') ?: null;
$first = true;
// With BENCH_GO set, greet errand only once that file exists (the drain's poller creates it when
// it starts polling), as the gearmand benchmark starts its workers after its jobs are queued.
$go = getenv('BENCH_GO') ?: null;
while ($go !== null && !file_exists($go)) {
    usleep(1000);
}
fwrite(STDOUT, "{\"type\":\"ready\"}\n");
fflush(STDOUT);
while (($line = fgets(STDIN)) !== false) {
    $started = microtime(true);
    $job = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
    if ($pickupLog !== null && isset($job['payload']['seq'])) {
        file_put_contents($pickupLog, sprintf("%d %.6f\n", $job['payload']['seq'], $started), FILE_APPEND);
    }
    if ($first && $marks !== null) {
        $first = false;
        file_put_contents("{$marks}/first-" . getmypid(), sprintf('%.6f', $started));
    }
    fwrite(STDOUT, '{"type":"result","id":' . $job['id'] . "}\n");
    fflush(STDOUT);
}
