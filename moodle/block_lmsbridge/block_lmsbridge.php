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
 * "Recommended for you": the learner's open lmsbridge recommendations, and their reports'.
 *
 * @package    block_lmsbridge
 * @copyright  2026 lmsbridge contributors
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

use local_lmsbridge\recommendations;

/**
 * Shows what lmsbridge last wrote through local_lmsbridge_set_recommendations: closed
 * recommendations are gone from there, so they are gone from here.
 */
class block_lmsbridge extends block_base {
    /**
     * Title.
     */
    public function init() {
        $this->title = get_string('recommendedforyou', 'block_lmsbridge');
    }

    /**
     * On the dashboard and the front page.
     *
     * @return array
     */
    public function applicable_formats() {
        return ['my' => true, 'site-index' => true, 'all' => false];
    }

    /**
     * One block per page.
     *
     * @return bool
     */
    public function instance_allow_multiple() {
        return false;
    }

    /**
     * The current user's items, then (for a manager) their reports' items.
     *
     * @return stdClass
     */
    public function get_content() {
        global $USER;
        if ($this->content !== null) {
            return $this->content;
        }
        $this->content = (object) ['text' => '', 'footer' => ''];
        if (!isloggedin() || isguestuser()
                || !has_capability('local/lmsbridge:viewownrecommendations', context_system::instance())) {
            return $this->content;
        }
        $own = recommendations::for_user((int) $USER->id);
        $reports = recommendations::for_reports((int) $USER->id);
        $html = $own ? $this->items($own, false) : html_writer::tag('p', get_string('nothingopen', 'block_lmsbridge'));
        if ($reports) {
            $html .= html_writer::tag('h5', get_string('yourreports', 'block_lmsbridge'), ['class' => 'mt-3']);
            $html .= $this->items($reports, true);
        }
        $this->content->text = $html;
        return $this->content;
    }

    /**
     * A list of recommendations: title (linked), why, due date; with the learner for a manager.
     *
     * @param array $items
     * @param bool $withlearner
     * @return string
     */
    private function items(array $items, bool $withlearner): string {
        $entries = '';
        foreach ($items as $item) {
            $title = s($item->title);
            $line = $item->url ? html_writer::link(new moodle_url($item->url), $title) : $title;
            if ($withlearner) {
                $line = html_writer::span(fullname($item), 'font-weight-bold') . ': ' . $line;
            }
            $details = '';
            // A manager reads why in words about their report ("their ..."), the learner about themselves.
            $reason = $withlearner && (string) $item->managerreason !== '' ? $item->managerreason : $item->reason;
            if ($reason !== '') {
                $details .= html_writer::div(get_string('why', 'block_lmsbridge', s($reason)), 'small text-muted');
            }
            if ($item->duedate) {
                $due = userdate($item->duedate, get_string('strftimedate', 'langconfig'));
                $details .= html_writer::div(get_string('due', 'block_lmsbridge', $due), 'small');
            }
            $entries .= html_writer::tag('li', $line . $details, ['class' => 'mb-2']);
        }
        return html_writer::tag('ul', $entries, ['class' => 'list-unstyled']);
    }
}
