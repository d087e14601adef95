<?php
// Reference errand pool worker in PHP (protocol: docs/pool-protocol.md).
//
// Reads one job per line on stdin and answers on stdout. The payload's "op"
// picks what to do, so tests can drive every path of the protocol:
// echo, sleep, fail, permanent, snooze, deadly, crash, grow, progress,
// garbage, spawn. With "once": true the op applies to the first attempt
// only (later attempts echo), so tests can watch a job recover. An attempt
// that does not count (deadly, snooze) comes again with the same number, so
// for those "once_file": PATH applies the op only while PATH does not exist
// (the worker creates it). "progress" reports {"step": 1} to
// {"step": count} (count: 3 unless given) before its result.

$hoard = []; // memory kept by "grow", to push the process over max_rss

function send(array $message): void
{
    // Unescaped unicode and slashes: UTF-8 travels as is, as errand sends it.
    fwrite(STDOUT, json_encode($message, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION) . "\n");
    fflush(STDOUT);
}

/** Returns the answer to one job (or null once it answered itself). */
function run(array $job): ?array
{
    global $hoard;
    $p = is_array($job['payload']) ? $job['payload'] : [];
    $op = $p['op'] ?? 'echo';
    $onceFile = $p['once_file'] ?? null;
    if ((($p['once'] ?? false) && $job['attempt'] > 1)
        || ($onceFile !== null && file_exists($onceFile))) {
        $op = 'echo';
    } elseif ($onceFile !== null) {
        touch($onceFile);
    }
    $id = $job['id'];
    $done = ['type' => 'result', 'id' => $id, 'result' => ['pid' => getmypid(), 'data' => $p['data'] ?? null]];
    switch (true) {
        case $op === 'sleep':
            usleep((int) (($p['seconds'] ?? 1) * 1e6));
            return $done;
        case $op === 'fail':
            return ['type' => 'error', 'id' => $id, 'error' => $p['message'] ?? 'failed'];
        case $op === 'permanent':
            return ['type' => 'permanent', 'id' => $id, 'error' => $p['message'] ?? 'cannot ever work'];
        case $op === 'snooze':
            return ['type' => 'snooze', 'id' => $id, 'seconds' => $p['seconds'] ?? 60];
        case $op === 'deadly':
            return ['type' => 'deadly', 'id' => $id, 'error' => $p['message'] ?? 'database unreachable'];
        case $op === 'crash':
            fwrite(STDERR, "crashing on purpose\n");
            exit((int) ($p['code'] ?? 3));
        case $op === 'grow':
            $hoard[] = str_repeat(random_bytes(1), ((int) ($p['mib'] ?? 64)) << 20);
            return $done;
        case $op === 'progress':
            for ($step = 1; $step <= (int) ($p['count'] ?? 3); $step++) {
                send(['type' => 'progress', 'id' => $id, 'progress' => ['step' => $step]]);
            }
            return $done;
        case $op === 'garbage':
            fwrite(STDOUT, "this is not JSON\n");
            fflush(STDOUT);
            return null;
        case $op === 'spawn':
            $child = proc_open(['sleep', '300'], [], $pipes);
            $done['result']['child'] = proc_get_status($child)['pid'];
            return $done;
        default:
            return $done;
    }
}

ini_set('memory_limit', '-1');
send(['type' => 'ready']);
while (($line = fgets(STDIN)) !== false) {
    $answer = run(json_decode($line, true, 512, JSON_THROW_ON_ERROR));
    if ($answer !== null) {
        send($answer);
    }
}
