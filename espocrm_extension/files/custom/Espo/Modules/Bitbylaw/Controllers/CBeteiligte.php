<?php
/* bitbylaw-tasks: the REST controller of CBeteiligte (the Person template's, nothing added). */

namespace Espo\Modules\Bitbylaw\Controllers;

class CBeteiligte extends \Espo\Core\Templates\Controllers\Person
{
}
