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
 * local_lmsbridge_set_recommendations: replace users' open recommendations, many users a call.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge\external;

defined('MOODLE_INTERNAL') || die();

require_once(__DIR__ . '/../../compat.php');

use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use core_external\external_warnings;
use local_lmsbridge\recommendations;

/**
 * For each user given, their open recommendations become exactly the items given: items not
 * given any more (closed in lmsbridge) disappear, an empty list clears the user.
 */
class set_recommendations extends external_api {
    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'recommendations' => new external_multiple_structure(new external_single_structure([
                'userid' => new external_value(PARAM_INT, 'The learner'),
                'items' => new external_multiple_structure(new external_single_structure([
                    'reference' => new external_value(PARAM_ALPHANUMEXT, 'lmsbridge key of the recommendation'),
                    // Plain text, stored as sent and escaped where shown (PARAM_TEXT would refuse
                    // a reason whose cleaning changes it, such as one with a '<').
                    'title' => new external_value(PARAM_RAW, 'What is recommended (plain text)'),
                    'reason' => new external_value(PARAM_RAW, 'Why (plain text)', VALUE_DEFAULT, ''),
                    'managerreason' => new external_value(PARAM_RAW, 'Why, as the manager reads it (plain text)',
                        VALUE_DEFAULT, ''),
                    'url' => new external_value(PARAM_URL, 'Link to the learning', VALUE_DEFAULT, ''),
                    'duedate' => new external_value(PARAM_INT, 'Due date (0: none)', VALUE_DEFAULT, 0),
                    'managerid' => new external_value(PARAM_INT, 'The learner\'s manager (0: none)', VALUE_DEFAULT, 0),
                ]), 'The user\'s open recommendations (all of them)', VALUE_DEFAULT, []),
            ])),
        ]);
    }

    /**
     * Replace each user's recommendations.
     *
     * @param array $recommendations
     * @return array
     */
    public static function execute(array $recommendations): array {
        global $DB;
        $params = self::validate_parameters(self::execute_parameters(), ['recommendations' => $recommendations]);
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/lmsbridge:managerecommendations', $context);
        $warnings = [];
        $users = 0;
        $stored = 0;
        $removed = 0;
        foreach ($params['recommendations'] as $entry) {
            $userid = (int) $entry['userid'];
            if (!$DB->record_exists('user', ['id' => $userid, 'deleted' => 0])) {
                $warnings[] = [
                    'item' => 'user',
                    'itemid' => $userid,
                    'warningcode' => 'invaliduser',
                    'message' => 'No such user: their recommendations were not stored',
                ];
                continue;
            }
            [$kept, $gone] = recommendations::replace_for_user($userid, $entry['items']);
            $users++;
            $stored += $kept;
            $removed += $gone;
        }
        return ['users' => $users, 'stored' => $stored, 'removed' => $removed, 'warnings' => $warnings];
    }

    /**
     * The answer.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'users' => new external_value(PARAM_INT, 'Users whose recommendations were replaced'),
            'stored' => new external_value(PARAM_INT, 'Recommendations now open for them'),
            'removed' => new external_value(PARAM_INT, 'Recommendations removed (closed)'),
            'warnings' => new external_warnings(),
        ]);
    }
}
