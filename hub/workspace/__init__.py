"""The coordinators' workspace: a Japanese web app for the multi-agency team, consent officers and ops (issue 8)."""
