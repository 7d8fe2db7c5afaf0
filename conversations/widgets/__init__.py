"""Pieces of conversation that more than one flow uses. A flow imports these, never another flow
(tests/test_layering.py).

- `student_picker`: the student step (search, paging, a missing student added in place);
- `date_picker`: a date picked («Hôm nay» / «Hôm qua») or typed, a draft's date as read;
- `photo_step`: the optional photo step and the «skip» button;
- `messages`: a long answer split to fit Telegram's limit, one more message after the reply;
- `device_labels`: a device type as the device flows name it;
- `vaccine_choices`: the vaccine product, place and dose-number questions (/vaccine, /vaccine_round);
- `round_helpers`: what the round chats share (district, figures, issues, telling people).
"""
