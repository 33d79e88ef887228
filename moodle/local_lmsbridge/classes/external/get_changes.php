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
 * local_lmsbridge_get_changes: the change log after a cursor, in pages.
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
use local_lmsbridge\change_log;

/**
 * Rows of the change log with an id greater than since_id, oldest first.
 *
 * A steady poll is one call whatever the size of the site; since_id = 0 reads the backfill
 * (the site's state at install) and then the log, as one sequence.
 */
class get_changes extends external_api {
    /** Most rows one call returns. */
    const MAX_LIMIT = 1000;

    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'since_id' => new external_value(PARAM_INT, 'Return changes with an id greater than this (0: from the start)'),
            'limit' => new external_value(PARAM_INT, 'Most changes to return (1 to 1000)', VALUE_DEFAULT, 500),
        ]);
    }

    /**
     * The changes after since_id.
     *
     * @param int $sinceid
     * @param int $limit
     * @return array
     */
    public static function execute(int $sinceid, int $limit = 500): array {
        global $DB;
        $params = self::validate_parameters(self::execute_parameters(), ['since_id' => $sinceid, 'limit' => $limit]);
        $context = \context_system::instance();
        self::validate_context($context);
        require_capability('local/lmsbridge:readchanges', $context);
        if ($params['since_id'] < 0) {
            throw new \invalid_parameter_exception('since_id must be 0 or more');
        }
        $limit = max(1, min(self::MAX_LIMIT, $params['limit']));
        $rows = $DB->get_records_select(change_log::TABLE, 'id > :sinceid', ['sinceid' => $params['since_id']],
            'id ASC', '*', 0, $limit + 1);
        $more = count($rows) > $limit;
        $rows = array_slice(array_values($rows), 0, $limit);
        $scales = [];
        $changes = [];
        foreach ($rows as $row) {
            $changes[] = [
                'id' => (int) $row->id,
                'kind' => $row->kind,
                'userid' => (int) $row->userid,
                'courseid' => (int) $row->courseid,
                'competencyid' => (int) $row->competencyid,
                'planid' => (int) $row->planid,
                'grade' => $row->grade === null ? null : (int) $row->grade,
                'gradename' => self::grade_name((int) $row->competencyid, $row->grade, $scales),
                'proficiency' => $row->proficiency === null ? null : (int) $row->proficiency,
                'status' => $row->status,
                'idnumber' => $row->idnumber,
                'email' => $row->email,
                'suspended' => (bool) $row->suspended,
                'deleted' => (bool) $row->deleted,
                'timechanged' => (int) $row->timechanged,
                'timecreated' => (int) $row->timecreated,
            ];
        }
        $lastid = $changes ? end($changes)['id'] : $params['since_id'];
        return [
            'changes' => $changes,
            'lastid' => $lastid,
            'more' => $more,
            'latestid' => change_log::last_id(),
            'warnings' => [],
        ];
    }

    /**
     * The name of a rating's scale value ('' for none or a competency deleted since).
     *
     * @param int $competencyid
     * @param mixed $grade
     * @param array $scales competency id => scale item names, filled as they are read
     * @return string
     */
    private static function grade_name(int $competencyid, $grade, array &$scales): string {
        if (!$competencyid || !$grade) {
            return '';
        }
        if (!array_key_exists($competencyid, $scales)) {
            $scales[$competencyid] = [];
            try {
                $competency = new \core_competency\competency($competencyid);
                $scales[$competencyid] = array_values($competency->get_scale()->load_items());
            } catch (\moodle_exception $e) {
                // The competency was deleted since: the rating keeps its number, without a name.
                $scales[$competencyid] = [];
            }
        }
        return (string) ($scales[$competencyid][(int) $grade - 1] ?? '');
    }

    /**
     * The answer.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'changes' => new external_multiple_structure(new external_single_structure([
                'id' => new external_value(PARAM_INT, 'Cursor position of the change'),
                'kind' => new external_value(PARAM_ALPHA, 'completion, rating, enrolment or user'),
                'userid' => new external_value(PARAM_INT, 'The user'),
                'courseid' => new external_value(PARAM_INT, 'Course (completion, enrolment, course rating), else 0'),
                'competencyid' => new external_value(PARAM_INT, 'Competency (rating), else 0'),
                'planid' => new external_value(PARAM_INT, 'Plan a rating was given in, else 0'),
                'grade' => new external_value(PARAM_INT, 'Rating value (null: none)', VALUE_REQUIRED, null, NULL_ALLOWED),
                'gradename' => new external_value(PARAM_TEXT, 'Name of the rating value'),
                'proficiency' => new external_value(PARAM_INT, '1 proficient, 0 not, null unknown', VALUE_REQUIRED, null,
                    NULL_ALLOWED),
                'status' => new external_value(PARAM_ALPHA, 'Enrolment: active, suspended, ended or removed'),
                'idnumber' => new external_value(PARAM_RAW, 'User: ID number after the change'),
                'email' => new external_value(PARAM_RAW, 'User: email after the change'),
                'suspended' => new external_value(PARAM_BOOL, 'User: suspended after the change'),
                'deleted' => new external_value(PARAM_BOOL, 'User: account deleted'),
                'timechanged' => new external_value(PARAM_INT, 'Exact time of the change'),
                'timecreated' => new external_value(PARAM_INT, 'When it was logged'),
            ])),
            'lastid' => new external_value(PARAM_INT, 'Id of the last change returned (since_id when none): the next since_id'),
            'more' => new external_value(PARAM_BOOL, 'Whether more changes follow lastid'),
            'latestid' => new external_value(PARAM_INT, 'Id of the newest change in the log: below since_id, the log '
                . 'was emptied (the plugin reinstalled) and the reader must start again from 0'),
            'warnings' => new \core_external\external_warnings(),
        ]);
    }
}
