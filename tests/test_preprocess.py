from generation.preprocess import lowercase, normalise_question, normalise_whitespace, preprocess_questions, strip_punctuation

ALL_STEPS = ["lowercase", "strip_punctuation", "normalise_whitespace", "drop_empty", "drop_duplicates"]


def test_text_steps():
    assert lowercase("Can Hair Loss GROW back?") == "can hair loss grow back?"
    assert strip_punctuation("What's COVID-19, really?!") == "Whats COVID 19  really  "
    assert normalise_whitespace("  a \t b\n\nc  ") == "a b c"


def test_full_preprocessing_counts_and_order():
    raw = ["What's COVID-19?", "  whats   covid 19 ", "", None, "   ", "Is eczema contagious?", "is eczema contagious"]
    rows, report = preprocess_questions(raw, ALL_STEPS)
    assert rows == ["whats covid 19", "is eczema contagious"]
    assert report.rows_in == 7 and report.rows_out == 2
    assert report.removed == {"drop_empty": 3, "drop_duplicates": 2}


def test_step_order_is_explicit():
    # Deduplicating before lower-casing keeps case variants apart.
    rows, report = preprocess_questions(["Flu", "flu"], ["drop_duplicates", "lowercase"])
    assert rows == ["flu", "flu"] and report.removed == {"drop_duplicates": 0}
    rows, _ = preprocess_questions(["Flu", "flu"], ["lowercase", "drop_duplicates"])
    assert rows == ["flu"]


def test_steps_can_be_switched_off():
    rows, report = preprocess_questions(["Is It Bad?", ""], ["normalise_whitespace"])
    assert rows == ["Is It Bad?", ""]
    assert report.removed == {}


def test_pii_placeholders_survive():
    text = "Email [EMAIL] or call [PHONE_NUMBER]: Is THIS a rash?"
    assert normalise_question(text, ALL_STEPS) == "email [EMAIL] or call [PHONE_NUMBER] is this a rash"


def test_unicode_letters_kept():
    assert normalise_question("Qu'est-ce que l'eczéma?", ALL_STEPS) == "quest ce que leczéma"
