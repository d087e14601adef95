<?php

declare(strict_types=1);

namespace Errand;

/**
 * errand answered 409: the request conflicts with the state of what it names.
 */
class ConflictException extends ErrandException
{
}
