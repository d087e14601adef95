<?php

declare(strict_types=1);

namespace Errand;

/**
 * Thrown by a handler: the job can never succeed (bad payload…); fail it at once.
 */
class PermanentException extends \RuntimeException
{
}
