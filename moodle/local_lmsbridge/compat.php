<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

/**
 * Moodle 4.1 compatibility for the external function classes.
 *
 * Moodle 4.2 moved the external API into the core_external namespace and keeps the old global
 * names only as aliases declared by lib/externallib.php (whose inclusion in a PHPUnit test then
 * needs process isolation). The plugin's classes therefore use the namespaced names, and on 4.1,
 * which has only the global ones, this file declares the namespaced names as aliases of them.
 * On 4.2 and later it does nothing.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

if (!class_exists(\core_external\external_api::class)) {
    global $CFG;
    require_once($CFG->libdir . '/externallib.php');
    $legacynames = [
        'external_api',
        'external_function_parameters',
        'external_value',
        'external_single_structure',
        'external_multiple_structure',
        'external_warnings',
    ];
    foreach ($legacynames as $legacyname) {
        class_alias($legacyname, 'core_external\\' . $legacyname);
    }
}
