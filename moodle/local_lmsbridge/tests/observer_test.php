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
 * Tests that Moodle's events write the change log.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_lmsbridge\observer
 * @covers     \local_lmsbridge\change_log
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_lmsbridge\observer::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_lmsbridge\change_log::class)]
final class observer_test extends \advanced_testcase {
    /**
     * The rows logged for a user, oldest first.
     *
     * @param int $userid
     * @param string $kind
     * @return array
     */
    private function logged(int $userid, string $kind): array {
        global $DB;
        return array_values($DB->get_records(change_log::TABLE, ['userid' => $userid, 'kind' => $kind], 'id ASC'));
    }

    public function test_a_course_completion_is_logged_with_its_exact_time(): void {
        $this->resetAfterTest();
        $this->preventResetByRollback(); // External observers run only after a commit.
        $course = $this->getDataGenerator()->create_course(['enablecompletion' => 1]);
        $user = $this->getDataGenerator()->create_and_enrol($course, 'student');
        $completion = new \completion_completion(['course' => $course->id, 'userid' => $user->id]);
        $completion->mark_complete(1700001234);
        $rows = $this->logged((int) $user->id, change_log::COMPLETION);
        $this->assertCount(1, $rows);
        $this->assertEquals($course->id, $rows[0]->courseid);
        $this->assertEquals(1700001234, $rows[0]->timechanged);
    }

    public function test_enrolment_changes_are_logged_with_the_state_after_them(): void {
        global $DB;
        $this->resetAfterTest();
        $this->preventResetByRollback(); // External observers run only after a commit.
        $course = $this->getDataGenerator()->create_course();
        $user = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->enrol_user($user->id, $course->id, 'student');
        $instance = $DB->get_record('enrol', ['courseid' => $course->id, 'enrol' => 'manual'], '*', MUST_EXIST);
        $plugin = enrol_get_plugin('manual');
        $plugin->update_user_enrol($instance, $user->id, ENROL_USER_SUSPENDED);
        $plugin->unenrol_user($instance, $user->id);
        $states = array_column($this->logged((int) $user->id, change_log::ENROLMENT), 'status');
        $this->assertSame(['active', 'suspended', 'removed'], $states);
    }

    public function test_an_account_change_logs_its_keys_and_a_deletion_logs_none(): void {
        $this->resetAfterTest();
        $this->preventResetByRollback(); // External observers run only after a commit.
        $user = $this->getDataGenerator()->create_user(['idnumber' => 'E1', 'email' => 'old@example.org']);
        $user->idnumber = 'E2';
        $user->suspended = 1;
        user_update_user($user, false, true);
        $rows = $this->logged((int) $user->id, change_log::USER);
        $this->assertSame('E2', end($rows)->idnumber);
        $this->assertEquals(1, end($rows)->suspended);

        delete_user(\core_user::get_user($user->id));
        $rows = $this->logged((int) $user->id, change_log::USER);
        $this->assertEquals(1, end($rows)->deleted);
        $this->assertSame('', end($rows)->email);
    }

    public function test_a_change_queues_one_notification_when_the_webhook_is_set_up(): void {
        global $DB;
        $this->resetAfterTest();
        change_log::add(change_log::COMPLETION, 5, 1700000000, ['courseid' => 2]);
        $this->assertSame(0, $DB->count_records('task_adhoc', ['classname' => '\local_lmsbridge\task\notify_webhook']));
        set_config('webhookenabled', 1, 'local_lmsbridge');
        set_config('webhookurl', 'http://127.0.0.1:8080/webhooks/moodle', 'local_lmsbridge');
        set_config('webhooksecret', 'secret', 'local_lmsbridge');
        change_log::add(change_log::COMPLETION, 5, 1700000001, ['courseid' => 3]);
        change_log::add(change_log::COMPLETION, 6, 1700000002, ['courseid' => 3]);
        $this->assertSame(1, $DB->count_records('task_adhoc', ['classname' => '\local_lmsbridge\task\notify_webhook']));
    }
}
