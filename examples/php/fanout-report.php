<?php
// Fan-out from a controller: split a report into PARTS jobs, enqueue them as
// one errand batch (POST /v1/batches), hold the request until every part has
// ended (GET /v1/batches/{id}?wait=30s), and add up the parts' results.
// The parts run on the PHP pool worker report-worker.php (see errand.toml).
//   php fanout-report.php [PARTS [UP_TO]]     (default: 10 parts, 1..1000)
// Plain PHP streams only: php-cli needs no curl extension.

const ERRAND_WAIT_SECONDS = 30;

/** Sends one JSON request to errand; returns the decoded answer or throws. */
function errand_request(string $method, string $url, ?array $body = null, int $timeout = 10): array
{
    $context = stream_context_create(['http' => [
        'method' => $method,
        'header' => "Content-Type: application/json\r\nAccept: application/json\r\n",
        'content' => $body === null ? '' : json_encode($body),
        'timeout' => $timeout,
        // Read the problem+json body of a 4xx/5xx answer instead of a bare warning.
        'ignore_errors' => true,
    ]]);
    $raw = @file_get_contents($url, false, $context);
    if ($raw === false) {
        $why = error_get_last()['message'] ?? 'no answer';
        throw new RuntimeException("cannot reach errand at $url: $why");
    }
    // file_get_contents fills $http_response_header with the status line first.
    preg_match('{^HTTP/\S+ (\d{3})}', $http_response_header[0] ?? '', $m);
    $status = (int) ($m[1] ?? 0);
    $answer = json_decode($raw, true);
    if ($status >= 400 || !is_array($answer)) {
        $detail = $answer['detail'] ?? $raw;
        throw new RuntimeException("errand answered $status to $method $url: $detail");
    }
    return $answer;
}

/** The parts of 1..$upTo as [from, to] ranges of nearly equal size. */
function report_parts(int $parts, int $upTo): array
{
    $ranges = [];
    for ($k = 0; $k < $parts; $k++) {
        $ranges[] = ['from' => intdiv($k * $upTo, $parts) + 1, 'to' => intdiv(($k + 1) * $upTo, $parts)];
    }
    return $ranges;
}

/** The controller: fans the report out, waits for it, returns the batch id and total. */
function fan_out_report(string $errand, int $parts, int $upTo): array
{
    $jobs = array_map(
        fn (array $range) => ['kind' => 'report_part', 'payload' => $range],
        report_parts($parts, $upTo),
    );
    $created = errand_request('POST', "$errand/v1/batches", ['jobs' => $jobs]);
    $id = $created['batch']['id'];

    // One held request instead of polling; the socket timeout outlasts the wait.
    $wait = ERRAND_WAIT_SECONDS;
    $done = errand_request('GET', "$errand/v1/batches/$id?wait={$wait}s", null, $wait + 10);
    if ($done['batch']['finished_at'] === null) {
        $counts = json_encode($done['batch']['counts']);
        throw new RuntimeException("batch $id still running after {$wait} s: $counts");
    }
    $total = 0;
    foreach ($done['results'] as $i => $part) {
        if ($part['state'] !== 'completed') {
            $error = $part['error'] ?? 'no error recorded';
            throw new RuntimeException("part $i (job {$part['id']}) is {$part['state']}: $error");
        }
        $total += $part['result']['sum'];
    }
    return [$id, $total];
}

$errand = rtrim(getenv('ERRAND_SERVER') ?: 'http://127.0.0.1:7071', '/');
$parts = filter_var($argv[1] ?? 10, FILTER_VALIDATE_INT);
$upTo = filter_var($argv[2] ?? 1000, FILTER_VALIDATE_INT);
if ($parts === false || $upTo === false || $parts < 1 || $upTo < $parts) {
    fwrite(STDERR, "usage: php fanout-report.php [PARTS [UP_TO]] with 1 <= PARTS <= UP_TO\n");
    exit(2);
}
try {
    $started = microtime(true);
    [$batch, $total] = fan_out_report($errand, $parts, $upTo);
    printf("batch %d: sum of 1..%d in %d parts, %.2f s\n", $batch, $upTo, $parts, microtime(true) - $started);
    echo "total: $total\n";
} catch (RuntimeException $e) {
    fwrite(STDERR, $e->getMessage() . "\n");
    exit(1);
}
