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
 * Web service functions of the lmsbridge companion plugin (add them to the lmsbridge service).
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$functions = [
    'local_lmsbridge_get_changes' => [
        'classname' => 'local_lmsbridge\external\get_changes',
        'methodname' => 'execute',
        'description' => 'Changes after a cursor: completions, competency ratings, enrolments and user changes.',
        'type' => 'read',
        'capabilities' => 'local/lmsbridge:readchanges',
    ],
    'local_lmsbridge_set_recommendations' => [
        'classname' => 'local_lmsbridge\external\set_recommendations',
        'methodname' => 'execute',
        'description' => 'Replace the open recommendations of each user given.',
        'type' => 'write',
        'capabilities' => 'local/lmsbridge:managerecommendations',
    ],
    'local_lmsbridge_get_info' => [
        'classname' => 'local_lmsbridge\external\get_info',
        'methodname' => 'execute',
        'description' => 'The plugin version, the change log position and the webhook status.',
        'type' => 'read',
        'capabilities' => 'local/lmsbridge:readchanges',
    ],
];
