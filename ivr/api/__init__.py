"""JSON APIs for a business's other systems: the consent check and reported opt-outs."""
