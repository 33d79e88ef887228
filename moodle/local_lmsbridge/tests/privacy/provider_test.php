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

namespace local_lmsbridge\privacy;

use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\writer;
use local_lmsbridge\change_log;
use local_lmsbridge\recommendations;

/**
 * Tests of the privacy provider.
 *
 * @package    local_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_lmsbridge\privacy\provider
 */
#[\PHPUnit\Framework\Attributes\CoversClass(\local_lmsbridge\privacy\provider::class)]
final class provider_test extends \core_privacy\tests\provider_testcase {
    public function test_a_users_changes_and_recommendations_are_exported_and_deleted(): void {
        global $DB;
        $this->resetAfterTest();
        $learner = $this->getDataGenerator()->create_user();
        $other = $this->getDataGenerator()->create_user();
        change_log::add(change_log::COMPLETION, (int) $learner->id, 1700000000, ['courseid' => 4]);
        change_log::add(change_log::COMPLETION, (int) $other->id, 1700000001, ['courseid' => 4]);
        recommendations::replace_for_user((int) $learner->id, [['reference' => 'rec-1', 'title' => 'CS101']]);
        $context = \context_user::instance($learner->id);

        $contexts = provider::get_contexts_for_userid((int) $learner->id);
        $this->assertEquals([$context->id], $contexts->get_contextids());

        $approved = new approved_contextlist($learner, 'local_lmsbridge', [$context->id]);
        provider::export_user_data($approved);
        $this->assertTrue(writer::with_context($context)->has_any_data());

        provider::delete_data_for_user($approved);
        $this->assertSame(0, $DB->count_records(change_log::TABLE, ['userid' => $learner->id]));
        $this->assertSame(0, $DB->count_records(recommendations::TABLE, ['userid' => $learner->id]));
        $this->assertSame(1, $DB->count_records(change_log::TABLE, ['userid' => $other->id]));
    }
}
