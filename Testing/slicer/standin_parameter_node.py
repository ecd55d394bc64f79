"""Stand-in for ``slicer.parameterNodeWrapper`` (Slicer's Base/Python/slicer/parameterNodeWrapper/).

What the module uses, with the rules of Slicer's own implementation:

- ``@parameterNodeWrapper``: typed properties read from / written to a
  ``vtkMRMLScriptedModuleNode`` (here a real one from the ``slicer-core`` wheel) with Slicer's
  serialization: ``str`` as is, ``int``/``float`` as ``str(value)``, ``bool`` as
  ``"True"``/``"False"``, a node as a node reference (plus an empty parameter of the same name);
  missing parameters get their default when the wrapper is created; validators (``Choice``,
  ``WithinRange``) run on every write and raise ``ValueError``.
- ``connectParametersToGui(mapping) -> tag`` / ``disconnectGui(tag)``: GUI connectors matched on
  the exact widget type, as Slicer's ``guiConnectors.py`` does: ``QCheckBox`` <-> ``bool``,
  ``QSpinBox`` <-> ``int`` (its range set from ``WithinRange``, else +-2**31), ``QComboBox``
  <-> ``str`` only with a ``Choice`` annotation (the combo box is refilled with the choices),
  ``QLineEdit`` <-> ``str``, ``qMRMLNodeComboBox`` <-> a node type (``nodeTypes`` set from the
  annotation). Any other pairing raises ``RuntimeError`` as in Slicer. The GUI follows the
  node's ``ModifiedEvent``.
"""

import typing
import weakref

import slicer
import vtk
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from MedSeqFTUI.pyside_shim import qMRMLNodeComboBox

__all__ = ["parameterNodeWrapper", "Choice", "WithinRange", "isParameterNodeWrapper"]


class Choice:
    def __init__(self, choices):
        self.choices = list(choices)

    def validate(self, value):
        if value not in self.choices:
            raise ValueError(f"Value '{value}' is not in the list of allowed choices: {self.choices}")


class WithinRange:
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value):
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"Value '{value}' is not within range [{self.minimum}, {self.maximum}]")


def _is_node_type(t):
    return isinstance(t, type) and issubclass(t, slicer.vtkMRMLNode)


class _Parameter:
    def __init__(self, name, hint, default_given, default):
        if typing.get_origin(hint) is typing.Annotated:
            self.type, *self.annotations = typing.get_args(hint)
        else:
            self.type, self.annotations = hint, []
        if self.type not in (str, int, float, bool) and not _is_node_type(self.type):
            raise Exception(f"Unable to create serializer for member {name} of type {self.type}")
        self.name = name
        self.default = default if default_given else {str: "", int: 0, float: 0.0, bool: False}.get(self.type)

    def annotation(self, kind):
        return next((a for a in self.annotations if isinstance(a, kind)), None)

    def is_in(self, node):
        return node.HasParameter(self.name)

    def read(self, node):
        if _is_node_type(self.type):
            return node.GetNodeReference(self.name)
        raw = node.GetParameter(self.name)
        return raw == "True" if self.type is bool else self.type(raw)

    def write(self, node, value):
        if _is_node_type(self.type):
            if value is not None and not isinstance(value, self.type):
                raise ValueError(f"{self.name}: expected {self.type.__name__}, got {type(value).__name__}")
            node.SetParameter(self.name, "")
            node.SetNodeReferenceID(self.name, value.GetID() if value is not None else None)
            return
        if value is None or not isinstance(value, (int, float) if self.type is float else self.type):
            raise ValueError(f"{self.name}: expected {self.type.__name__}, got {value!r}")
        for validator in self.annotations:
            validator.validate(value)
        node.SetParameter(self.name, ("True" if value else "False") if self.type is bool else str(value))


class _Connector:
    """Widget <-> value for one parameter; ``changed`` is connected to the widget's signal."""

    def __init__(self, widget, parameter):
        self.widget, self.parameter = widget, parameter
        t = parameter.type
        if type(widget) is QCheckBox and t is bool:
            self.kind, self.signal = "check", widget.stateChanged
        elif type(widget) is QSpinBox and t is int:
            self.kind, self.signal = "spin", widget.valueChanged
            within = parameter.annotation(WithinRange)
            widget.setRange(*((within.minimum, within.maximum) if within else (-2**31, 2**31 - 1)))
        elif type(widget) is QComboBox and t in (int, float, str, bool):
            choice = parameter.annotation(Choice)
            if choice is None:
                raise RuntimeError("ComboBoxToStringableConnector requires the Choice annotation to be used.")
            self.kind, self.signal, self.choices = "combo", widget.currentIndexChanged, choice.choices
            widget.clear()
            for c in self.choices:
                widget.addItem(str(c))
        elif type(widget) is QLineEdit and t is str:
            self.kind, self.signal = "line", widget.textChanged
        elif type(widget) is qMRMLNodeComboBox and _is_node_type(t):
            self.kind, self.signal = "node", widget.currentNodeChanged
            widget.nodeTypes = [t.__name__]
        else:
            raise RuntimeError(f"Unable to create GUI connector from datatype '{t}' to widget type '{type(widget)}'")
        self.callback = None
        self._connected = False

    def read(self):
        w = self.widget
        return {"check": lambda: w.isChecked(), "spin": lambda: w.value(), "line": lambda: w.text(),
                "combo": lambda: self.choices[w.currentIndex()], "node": lambda: w.currentNode()}[self.kind]()

    def write(self, value):
        w = self.widget
        if self.kind == "check":
            w.setChecked(bool(value))
        elif self.kind == "spin":
            w.setValue(int(value))
        elif self.kind == "line":
            if w.text() != value:
                w.setText(value)
        elif self.kind == "combo":
            if value not in self.choices:
                raise ValueError(f"Unable to find value {value} in choices {self.choices}")
            w.setCurrentIndex(self.choices.index(value))
        else:
            w.setCurrentNode(value)

    def on_changed(self, callback):
        # Slicer disconnects the widget signal here. PySide6 6.12's ``disconnect`` of a bound
        # method drops a reference to True/False on every call (the interpreter aborts at exit
        # once enough have gone), so the stand-in stays connected and forgets the callback.
        if callback is not None and not self._connected:
            self.signal.connect(self._fire)
            self._connected = True
        self.callback = callback

    def _fire(self, *_):
        if self.callback is not None:
            self.callback()


def _process(cls):
    hints = typing.get_type_hints(cls, include_extras=True)
    parameters = {name: _Parameter(name, hint, hasattr(cls, name), getattr(cls, name, None)) for name, hint in hints.items()}

    def init(self, parameterNode):
        self.parameterNode = parameterNode
        self._guis, self._next_tag, self._updating = {}, 0, False
        for p in parameters.values():
            if not p.is_in(parameterNode):
                p.write(parameterNode, p.default)

    def get_value(self, name):
        return parameters[name].read(self.parameterNode)

    def set_value(self, name, value):
        parameters[name].write(self.parameterNode, value)

    def update_gui(self):
        if self._updating:
            return
        self._updating = True
        try:
            for mapping in self._guis.values():
                for name, connector in mapping.items():
                    connector.write(self.getValue(name))
        finally:
            self._updating = False

    def connect_parameters(self, mapping):
        for name in mapping:
            if name not in parameters:
                raise ValueError(f"Cannot find a param with the given name: {name}")
        connectors = {name: _Connector(widget, parameters[name]) for name, widget in mapping.items()}
        tag, self._next_tag = self._next_tag, self._next_tag + 1
        self._guis[tag] = connectors
        for name, connector in connectors.items():
            connector.write(self.getValue(name))

            def gui_to_node(name=name, connector=connector):
                if not self._updating:
                    self.setValue(name, connector.read())

            connector.on_changed(gui_to_node)
        me = weakref.ref(self)  # as in Slicer: the node's observer must not keep the wrapper alive
        self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda *_: me() is not None and update_gui(me()))
        return tag

    def disconnect_gui(self, tag):
        for connector in self._guis.pop(tag, {}).values():
            connector.on_changed(None)

    for name in parameters:
        setattr(cls, name, property(lambda self, n=name: self.getValue(n), lambda self, v, n=name: self.setValue(n, v)))
    cls.allParameters = parameters
    cls._is_parameter_node_wrapper = True
    cls.__init__ = init
    cls.getValue, cls.setValue = get_value, set_value
    cls.connectParametersToGui, cls.disconnectGui = connect_parameters, disconnect_gui
    cls.StartModify = lambda self: self.parameterNode.StartModify()
    cls.EndModify = lambda self, wasModified: self.parameterNode.EndModify(wasModified)
    cls.AddObserver = lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(event, callback, priority)
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    return cls


def parameterNodeWrapper(classtype=None):
    if classtype is None:
        return _process
    return _process(classtype)


def isParameterNodeWrapper(classOrObj):
    return getattr(classOrObj, "_is_parameter_node_wrapper", False)
