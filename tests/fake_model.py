"""A stand-in for derivanim.api.model_slots: answers every request with the given slots, as the model filler would."""

from derivanim.model_filler import ModelFill
from derivanim.slots import Slots


def model_answering(slots: Slots, asked: list | None = None):
    """A model_slots that answers `slots` to any request (recording each request in `asked`, when given)."""
    def model_slots(text, adapter=None, base_model=None):
        if asked is not None:
            asked.append(text)
        return ModelFill(request=text, emitted=slots.model_dump_json(), slots=slots, tokens=30, forward_passes=12,
                         seconds=0.1, model="a fake")
    return model_slots
