"""Operations: the dead-letter store, health rules and the status snapshot IT staff see."""
