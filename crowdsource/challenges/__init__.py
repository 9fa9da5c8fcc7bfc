"""From pain points to published challenges: vendors, challenges, proposals, judging, awards."""
