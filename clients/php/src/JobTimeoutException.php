<?php

declare(strict_types=1);

namespace Errand;

/**
 * Thrown into a running handler (from the SIGALRM heartbeat) once the attempt passed the kind's
 * `timeout`; the worker reports `retry`. A handler that catches Throwable should rethrow it.
 */
final class JobTimeoutException extends \RuntimeException
{
}
