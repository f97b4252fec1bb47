"""Sub-commands of the ``mslesseg`` CLI, one module each (see ``mslesseg_nnunet.cli``)."""
