<?php

// One PHP client enqueuing one job at a time, as a web request would: errand through its PHP
// client (clients/php, one reused curl handle), beanstalkd through its text protocol on one
// stream socket (what pheanstalk sends). Prints one JSON line for bench/enqueue.sh.
//
//   php enqueue.php errand URL JOBS
//   php enqueue.php beanstalkd HOST:PORT JOBS

declare(strict_types=1);

require __DIR__ . '/../remote/autoload.php';
require __DIR__ . '/../remote/common.php';

[, $server, $address, $jobs] = $argv + array_fill(0, 4, null);
if ($jobs === null || !in_array($server, ['errand', 'beanstalkd'], true)) {
    fwrite(STDERR, "usage: php enqueue.php errand|beanstalkd URL|HOST:PORT JOBS\n");
    exit(2);
}
$jobs = (int) $jobs;

if ($server === 'errand') {
    $client = new Errand\Client($address);
    $put = static function () use ($client): void {
        $client->enqueue('noop');
    };
} else {
    $socket = stream_socket_client("tcp://{$address}", $errno, $error, 30);
    if ($socket === false) {
        throw new RuntimeException("beanstalkd {$address}: {$error}");
    }
    stream_set_timeout($socket, 30);
    $put = static function () use ($socket): void {
        fwrite($socket, "put 0 0 60 4\r\nnull\r\n");
        $answer = fgets($socket);
        if ($answer === false || !str_starts_with($answer, 'INSERTED ')) {
            throw new RuntimeException('beanstalkd put: ' . var_export($answer, true));
        }
    };
}

$t = microtime(true);
for ($i = 0; $i < $jobs; $i++) {
    $put();
}
$seconds = microtime(true) - $t;
emit(['scenario' => 'enqueue', 'label' => "{$server}-php", 'jobs' => $jobs,
    'enqueue_jobs_per_s' => round($jobs / $seconds, 1)]);
