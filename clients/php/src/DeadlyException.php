<?php

declare(strict_types=1);

namespace Errand;

/**
 * Thrown by a handler: the infrastructure the job needs is down (e.g. the database connection
 * is dead). The job is handed back without using an attempt and the worker process exits so
 * that its supervisor starts a fresh one.
 */
class DeadlyException extends \RuntimeException
{
}
