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

namespace local_lmsbridge;

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once($CFG->dirroot . '/completion/completion_completion.php');

/**
 * Tests of the install-time backfill.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_lmsbridge\backfill
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_lmsbridge\backfill::class)]
final class backfill_test extends \advanced_testcase {
    public function test_the_sites_completions_and_enrolments_become_the_first_rows(): void {
        global $DB;
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course(['enablecompletion' => 1]);
        $done = $this->getDataGenerator()->create_and_enrol($course, 'student');
        $suspended = $this->getDataGenerator()->create_and_enrol($course, 'student', null, 'manual', 0, 0,
            ENROL_USER_SUSPENDED);
        (new \completion_completion(['course' => $course->id, 'userid' => $done->id]))->mark_complete(1700005555);
        $DB->delete_records(change_log::TABLE); // As on a site where the plugin is being installed.

        backfill::run();

        $rows = array_values($DB->get_records(change_log::TABLE, null, 'id ASC'));
        $completions = array_values(array_filter($rows, fn($r) => $r->kind === change_log::COMPLETION));
        $this->assertCount(1, $completions);
        $this->assertEquals($done->id, $completions[0]->userid);
        $this->assertEquals(1700005555, $completions[0]->timechanged);
        $states = [];
        foreach ($rows as $row) {
            if ($row->kind === change_log::ENROLMENT) {
                $states[(int) $row->userid] = $row->status;
            }
        }
        $this->assertSame('active', $states[(int) $done->id]);
        $this->assertSame('suspended', $states[(int) $suspended->id]);
        $this->assertSame(change_log::COMPLETION, $rows[0]->kind); // Backfill first, in one id sequence.
    }
}
