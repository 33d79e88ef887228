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

use core_external\external_api;
use local_lmsbridge\external\get_changes;
use local_lmsbridge\external\get_info;
use local_lmsbridge\external\set_recommendations;

defined('MOODLE_INTERNAL') || die();

global $CFG;
require_once($CFG->dirroot . '/local/lmsbridge/compat.php');

/**
 * Tests of the plugin's web service functions.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_lmsbridge\external\get_changes
 * @covers     \local_lmsbridge\external\set_recommendations
 * @covers     \local_lmsbridge\external\get_info
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_lmsbridge\external\get_changes::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_lmsbridge\external\set_recommendations::class)]
#[\PHPUnit\Framework\Attributes\CoversClass(\local_lmsbridge\external\get_info::class)]
final class external_test extends \advanced_testcase {
    /**
     * A web-service user holding the plugin's capabilities.
     *
     * @param string[] $capabilities
     * @return \stdClass
     */
    private function service_user(array $capabilities): \stdClass {
        $user = $this->getDataGenerator()->create_user();
        $roleid = $this->getDataGenerator()->create_role();
        foreach ($capabilities as $capability) {
            assign_capability($capability, CAP_ALLOW, $roleid, \context_system::instance()->id);
        }
        role_assign($roleid, $user->id, \context_system::instance()->id);
        accesslib_clear_all_caches_for_unit_testing();
        $this->setUser($user);
        return $user;
    }

    public function test_changes_are_returned_after_the_cursor_in_pages(): void {
        $this->resetAfterTest();
        $this->service_user(['local/lmsbridge:readchanges']);
        $first = change_log::add(change_log::COMPLETION, 10, 1700000001, ['courseid' => 5]);
        $second = change_log::add(change_log::ENROLMENT, 11, 1700000002, ['courseid' => 5, 'status' => 'suspended']);
        $third = change_log::add(change_log::USER, 12, 1700000003, ['idnumber' => 'E12', 'email' => 'a@example.org']);

        $page = external_api::clean_returnvalue(get_changes::execute_returns(), get_changes::execute(0, 2));
        $this->assertSame([$first, $second], array_column($page['changes'], 'id'));
        $this->assertTrue($page['more']);
        $this->assertSame($second, $page['lastid']);
        $this->assertSame($third, $page['latestid']);
        $this->assertSame(1700000001, $page['changes'][0]['timechanged']);
        $this->assertSame('suspended', $page['changes'][1]['status']);

        $rest = external_api::clean_returnvalue(get_changes::execute_returns(), get_changes::execute($page['lastid'], 2));
        $this->assertSame([$third], array_column($rest['changes'], 'id'));
        $this->assertFalse($rest['more']);
        $this->assertSame('E12', $rest['changes'][0]['idnumber']);

        $none = external_api::clean_returnvalue(get_changes::execute_returns(), get_changes::execute($third, 500));
        $this->assertSame([], $none['changes']);
        $this->assertSame($third, $none['lastid']);
    }

    public function test_reading_changes_needs_the_capability(): void {
        $this->resetAfterTest();
        $this->service_user([]);
        $this->expectException(\required_capability_exception::class);
        get_changes::execute(0, 10);
    }

    public function test_recommendations_are_replaced_per_user_and_closed_ones_disappear(): void {
        $this->resetAfterTest();
        $learner = $this->getDataGenerator()->create_user();
        $manager = $this->getDataGenerator()->create_user();
        $this->service_user(['local/lmsbridge:managerecommendations']);
        $item = fn(string $reference) => [
            'reference' => $reference,
            'title' => "Course $reference",
            'reason' => 'CSAT 3.1 below 4.0',
            'url' => 'https://moodle.example.org/course/view.php?id=3',
            'duedate' => 1700086400,
            'managerid' => (int) $manager->id,
        ];
        $answer = set_recommendations::execute([['userid' => $learner->id, 'items' => [$item('rec-1'), $item('rec-2')]]]);
        $answer = external_api::clean_returnvalue(set_recommendations::execute_returns(), $answer);
        $this->assertSame(['users' => 1, 'stored' => 2, 'removed' => 0, 'warnings' => []], $answer);

        $answer = set_recommendations::execute([
            ['userid' => $learner->id, 'items' => [$item('rec-2')]],
            ['userid' => 999999, 'items' => [$item('rec-9')]],
        ]);
        $answer = external_api::clean_returnvalue(set_recommendations::execute_returns(), $answer);
        $this->assertSame(1, $answer['removed']);
        $this->assertSame('invaliduser', $answer['warnings'][0]['warningcode']);
        $this->assertSame(['rec-2'], array_column(recommendations::for_user((int) $learner->id), 'reference'));
        $this->assertSame(['rec-2'], array_column(recommendations::for_reports((int) $manager->id), 'reference'));

        set_recommendations::execute([['userid' => $learner->id, 'items' => []]]);
        $this->assertSame([], recommendations::for_user((int) $learner->id));
    }

    public function test_writing_recommendations_needs_the_capability(): void {
        $this->resetAfterTest();
        $this->service_user(['local/lmsbridge:readchanges']);
        $this->expectException(\required_capability_exception::class);
        set_recommendations::execute([]);
    }

    public function test_info_reports_the_version_and_the_webhook_without_its_secret(): void {
        $this->resetAfterTest();
        $this->service_user(['local/lmsbridge:readchanges']);
        set_config('webhookenabled', 1, 'local_lmsbridge');
        set_config('webhookurl', 'http://127.0.0.1:8080/webhooks/moodle', 'local_lmsbridge');
        set_config('webhooksecret', 'shared-secret-value', 'local_lmsbridge');
        $info = external_api::clean_returnvalue(get_info::execute_returns(), get_info::execute());
        $this->assertSame((int) get_config('local_lmsbridge', 'version'), $info['version']);
        $this->assertTrue($info['webhook']['enabled']);
        $this->assertTrue($info['webhook']['secretset']);
        $this->assertStringNotContainsString('shared-secret-value', json_encode($info));
    }
}
