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
 * The append-only change log lmsbridge reads.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge;

/**
 * Writes rows to local_lmsbridge_changes and tells the daemon that there is something new.
 *
 * Rows are only ever added (the privacy provider's deletions aside); their id is the cursor
 * lmsbridge keeps, so one call of local_lmsbridge_get_changes answers "what changed since".
 */
class change_log {
    /** The log table. */
    const TABLE = 'local_lmsbridge_changes';

    /** Kinds of change. */
    const COMPLETION = 'completion';
    /** A user competency rating (in or outside a plan, or in a course). */
    const RATING = 'rating';
    /** A user's enrolment state in a course. */
    const ENROLMENT = 'enrolment';
    /** A user account (suspension, ID number, email, deletion). */
    const USER = 'user';

    /**
     * Log one change and queue the webhook notification.
     *
     * @param string $kind one of the kinds above
     * @param int $userid the user the change is about
     * @param int $timechanged exact time of the change (epoch seconds)
     * @param array $fields other columns of the row (courseid, competencyid, grade, status, ...)
     * @return int the id of the new row
     */
    public static function add(string $kind, int $userid, int $timechanged, array $fields = []): int {
        global $DB;
        $row = (object) array_merge(self::defaults(), $fields, [
            'kind' => $kind,
            'userid' => $userid,
            'timechanged' => $timechanged,
            'timecreated' => time(),
        ]);
        $id = $DB->insert_record(self::TABLE, $row);
        if (self::webhook_configured()) {
            task\notify_webhook::queue();
        }
        return (int) $id;
    }

    /**
     * Column defaults of a row.
     *
     * @return array
     */
    public static function defaults(): array {
        return [
            'courseid' => 0,
            'competencyid' => 0,
            'planid' => 0,
            'grade' => null,
            'proficiency' => null,
            'status' => '',
            'idnumber' => '',
            'email' => '',
            'suspended' => 0,
            'deleted' => 0,
        ];
    }

    /**
     * The id of the newest row (0: the log is empty).
     *
     * @return int
     */
    public static function last_id(): int {
        global $DB;
        return (int) $DB->get_field_sql('SELECT MAX(id) FROM {' . self::TABLE . '}');
    }

    /**
     * Whether the push is switched on and has both a URL and a secret.
     *
     * @return bool
     */
    public static function webhook_configured(): bool {
        $config = get_config('local_lmsbridge');
        return !empty($config->webhookenabled) && !empty($config->webhookurl) && !empty($config->webhooksecret);
    }

    /**
     * A user's enrolment state in a course, over all their enrolment methods.
     *
     * active: an active enrolment in an enabled method, started and not ended; ended: enrolled,
     * but every enrolment's end date has passed; suspended: enrolled otherwise (suspended, not
     * started yet, or a disabled method); removed: no enrolment left.
     *
     * @param int $userid
     * @param int $courseid
     * @return string
     */
    public static function enrolment_status(int $userid, int $courseid): string {
        global $DB;
        $context = \context_course::instance($courseid, IGNORE_MISSING);
        if (!$context) {
            return 'removed';
        }
        if (is_enrolled($context, $userid, '', true)) {
            return 'active';
        }
        $sql = "SELECT ue.id, ue.status, ue.timeend
                  FROM {user_enrolments} ue
                  JOIN {enrol} e ON e.id = ue.enrolid
                 WHERE ue.userid = :userid AND e.courseid = :courseid";
        $enrolments = $DB->get_records_sql($sql, ['userid' => $userid, 'courseid' => $courseid]);
        if (!$enrolments) {
            return 'removed';
        }
        $now = time();
        foreach ($enrolments as $enrolment) {
            if ((int) $enrolment->timeend === 0 || (int) $enrolment->timeend > $now) {
                return 'suspended';
            }
        }
        return 'ended';
    }
}
