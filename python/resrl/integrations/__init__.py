"""Drop-in pieces for existing RL trainers (docs/integrations.md).

resrl.integrations.verl: ResRL advantages for verl's actor update.
"""
