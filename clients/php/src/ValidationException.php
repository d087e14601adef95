<?php

declare(strict_types=1);

namespace Errand;

/**
 * errand answered 422: a request field is wrong, named in $field.
 */
class ValidationException extends ErrandException
{
}
