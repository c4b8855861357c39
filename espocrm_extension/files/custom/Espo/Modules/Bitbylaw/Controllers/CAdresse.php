<?php
/* bitbylaw-tasks: the REST controller of CAdresse (the Base template's, nothing added). */

namespace Espo\Modules\Bitbylaw\Controllers;

class CAdresse extends \Espo\Core\Templates\Controllers\Base
{
}
