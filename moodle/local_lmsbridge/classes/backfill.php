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
 * The first rows of the change log: what the site held when the plugin was installed.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

namespace local_lmsbridge;

/**
 * Copies existing completions, ratings and enrolments into the log, at install.
 *
 * Why at install and not in a separate phase of the cursor: the backfill rows get the first ids,
 * before any row an observer writes, so "backfill, then the log" is one monotonic sequence and
 * lmsbridge keeps a single cursor (since_id = 0 reads the backfill in pages, then the log goes
 * on from there). Each kind is one INSERT ... SELECT on the server, so a large site is copied
 * without moving rows through PHP. User accounts are not copied: lmsbridge finds accounts
 * through core_user_get_users_by_field and reads only their changes from the log.
 */
class backfill {
    /**
     * Copy the site's current state into the change log.
     */
    public static function run(): void {
        global $DB;
        $table = '{' . change_log::TABLE . '}';
        $columns = 'kind, userid, courseid, competencyid, planid, grade, proficiency, status, '
            . 'idnumber, email, suspended, deleted, timechanged, timecreated';
        $now = time();

        $DB->execute(
            "INSERT INTO $table ($columns)
             SELECT 'completion', cc.userid, cc.course, 0, 0, NULL, NULL, '', '', '', 0, 0, cc.timecompleted, :now
               FROM {course_completions} cc
              WHERE cc.timecompleted > 0
           ORDER BY cc.timecompleted, cc.id",
            ['now' => $now]
        );
        $DB->execute(
            "INSERT INTO $table ($columns)
             SELECT 'rating', uc.userid, 0, uc.competencyid, 0, uc.grade, uc.proficiency, '', '', '', 0, 0,
                    COALESCE(uc.timemodified, uc.timecreated), :now
               FROM {competency_usercomp} uc
              WHERE uc.grade IS NOT NULL
           ORDER BY uc.id",
            ['now' => $now]
        );
        $DB->execute(
            "INSERT INTO $table ($columns)
             SELECT 'enrolment', ue.userid, e.courseid, 0, 0, NULL, NULL,
                    CASE WHEN MAX(CASE WHEN ue.status = 0 AND e.status = 0 AND ue.timestart <= :now1
                                        AND (ue.timeend = 0 OR ue.timeend > :now2) THEN 1 ELSE 0 END) = 1
                         THEN 'active' ELSE 'suspended' END,
                    '', '', 0, 0, MAX(ue.timemodified), :now3
               FROM {user_enrolments} ue
               JOIN {enrol} e ON e.id = ue.enrolid
               JOIN {user} u ON u.id = ue.userid AND u.deleted = 0
           GROUP BY ue.userid, e.courseid
           ORDER BY ue.userid, e.courseid",
            ['now1' => $now, 'now2' => $now, 'now3' => $now]
        );
    }
}
