<?php

declare(strict_types=1);

namespace Errand;

/**
 * errand answered 404: no such job, batch or event.
 */
class NotFoundException extends ErrandException
{
}
