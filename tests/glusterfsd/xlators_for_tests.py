"""Small xlator types registered for graph tests (never shipped)."""
from glusterfsd.options import Option, OptionError
from glusterfsd.xlator import EVENT_CHILD_UP, Xlator, register

EVENTS = []


@register
class Leaf(Xlator):
    type_name = "test/leaf"
    children_range = (0, 0)
    options = (Option("size", "int", "10", min=1, max=100), Option("name", "str", "leaf"))

    def init(self):
        if self.opts["name"] == "fail":
            raise RuntimeError("leaf refused to start")
        EVENTS.append(("init", self.name))

    def fini(self):
        EVENTS.append(("fini", self.name))

    def stat(self, caller, gfid):
        return ("stat", self.name, gfid)


@register
class Middle(Xlator):
    type_name = "test/middle"
    children_range = (1, None)

    def init(self):
        EVENTS.append(("init", self.name))

    def fini(self):
        EVENTS.append(("fini", self.name))


@register
class Top(Xlator):
    type_name = "test/top"
    children_range = (1, 2)
    options = (Option("vol.*.flag", "bool", "off"), Option("limit", "int", "5"))

    def init(self):
        EVENTS.append(("init", self.name))

    def fini(self):
        EVENTS.append(("fini", self.name))

    def notify(self, event, data=None):
        if event == EVENT_CHILD_UP:
            EVENTS.append(("child-up", self.name, data.name))
        super().notify(event, data)

    def check(self):
        names = {c.name for c in self.children}
        for key in self.given:
            if key.startswith("vol.") and key.split(".")[1] not in names:
                raise OptionError(key, f"option {key} names no subvolume")

    def reconfigure(self, changed):
        EVENTS.append(("reconfigure", self.name, tuple(sorted(changed))))
        super().reconfigure(changed)
