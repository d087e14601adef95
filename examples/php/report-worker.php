<?php
// errand pool worker for the fan-out example (protocol: docs/pool-protocol.md).
// Each job is one part of the report, the whole numbers from..to; its result
// is their sum. A payload without them fails the job at once ("permanent"):
// no retry can fix it.

function send(array $message): void
{
    fwrite(STDOUT, json_encode($message) . "\n");
    fflush(STDOUT);
}

/** The answer to one job line. */
function answer(array $job): array
{
    $p = $job['payload'];
    $from = $p['from'] ?? null;
    $to = $p['to'] ?? null;
    if (!is_int($from) || !is_int($to) || $from > $to) {
        return ['type' => 'permanent', 'id' => $job['id'], 'error' => 'payload needs whole numbers "from" <= "to"'];
    }
    $sum = 0;
    for ($n = $from; $n <= $to; $n++) {
        $sum += $n;
    }
    return ['type' => 'result', 'id' => $job['id'], 'result' => ['from' => $from, 'to' => $to, 'sum' => $sum]];
}

send(['type' => 'ready']);
while (($line = fgets(STDIN)) !== false) {
    send(answer(json_decode($line, true, 512, JSON_THROW_ON_ERROR)));
}
